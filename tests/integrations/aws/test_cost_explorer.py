"""The Cost Explorer gateway against moto in server mode, with answers queued through moto's
configuration API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core.clock import ManualClock
from core.config import Settings
from integrations.aws.cost_explorer import CostExplorerGateway
from integrations.aws.cost_types import SERVICE, DateRange, Granularity
from integrations.aws.errors import AwsCredentialsMissing, AwsServerError
from integrations.aws.session import AwsClients, AwsConfig
from integrations.sandbox.aws_seed import (
    EC2_COMPUTE,
    RDS,
    S3,
    cost_and_usage_response,
    result_by_time,
    tag_group_key,
)
from tests.fixtures.aws import MotoServer

TODAY = datetime(2026, 3, 18, 10, 30, tzinfo=UTC)


def day(n: int) -> DateRange:
    return DateRange(start=date(2026, 3, n), end=date(2026, 3, n + 1))


@pytest.fixture
def gateway(moto_clients: AwsClients) -> CostExplorerGateway:
    return CostExplorerGateway(moto_clients, ManualClock(TODAY))


async def test_daily_totals_are_exact_decimals(
    moto_aws: MotoServer, gateway: CostExplorerGateway
) -> None:
    moto_aws.queue_cost_results(
        [
            cost_and_usage_response(
                [
                    result_by_time(day(1), total=Decimal("10.25")),
                    result_by_time(day(2), total=Decimal("11.5")),
                    result_by_time(day(3), total=Decimal("0.1234567891"), estimated=True),
                ]
            )
        ]
    )

    report = await gateway.cost_and_usage(
        DateRange(start=date(2026, 3, 1), end=date(2026, 3, 4)), Granularity.DAILY
    )

    assert report.total == Decimal("21.8734567891")
    assert report.currency == "USD"
    assert [bucket.total for bucket in report.buckets] == [
        Decimal("10.25"),
        Decimal("11.5"),
        Decimal("0.1234567891"),
    ]
    assert [bucket.period for bucket in report.buckets] == [day(1), day(2), day(3)]
    assert report.estimated and not report.buckets[0].estimated
    assert report.requests == 1
    [body] = moto_aws.cost_explorer_request_bodies()
    assert body == {
        "TimePeriod": {"Start": "2026-03-01", "End": "2026-03-04"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
    }


async def test_grouping_by_tag_names_groups_by_tag_value(
    moto_aws: MotoServer, gateway: CostExplorerGateway
) -> None:
    moto_aws.queue_cost_results(
        [
            cost_and_usage_response(
                [
                    result_by_time(
                        DateRange(start=date(2026, 2, 1), end=date(2026, 3, 1)),
                        groups={
                            tag_group_key("team", "payments"): Decimal("4210.55"),
                            tag_group_key("team", "search"): Decimal("1980.40"),
                            tag_group_key("team", ""): Decimal("312.05"),
                        },
                    )
                ],
                group_by="team",
            )
        ]
    )

    report = await gateway.cost_and_usage(
        DateRange(start=date(2026, 2, 1), end=date(2026, 3, 1)),
        Granularity.MONTHLY,
        group_by="team",
    )

    assert report.by_group() == {
        "payments": Decimal("4210.55"),
        "search": Decimal("1980.40"),
        "": Decimal("312.05"),
    }
    assert report.total == Decimal("6503.00")
    [body] = moto_aws.cost_explorer_request_bodies()
    assert body["GroupBy"] == [{"Type": "TAG", "Key": "team"}]
    assert body["Granularity"] == "MONTHLY"


async def test_grouping_by_service_within_a_team(
    moto_aws: MotoServer, gateway: CostExplorerGateway
) -> None:
    moto_aws.queue_cost_results(
        [
            cost_and_usage_response(
                [
                    result_by_time(
                        day(1), groups={EC2_COMPUTE: Decimal("92.4"), RDS: Decimal("48.1")}
                    ),
                    result_by_time(
                        day(2), groups={EC2_COMPUTE: Decimal("90"), S3: Decimal("6.25")}
                    ),
                ],
                group_by=SERVICE,
            )
        ]
    )

    report = await gateway.cost_and_usage(
        DateRange(start=date(2026, 3, 1), end=date(2026, 3, 3)),
        Granularity.DAILY,
        filter_tag=("team", "payments"),
        group_by=SERVICE,
    )

    assert report.by_group() == {
        EC2_COMPUTE: Decimal("182.4"),
        RDS: Decimal("48.1"),
        S3: Decimal("6.25"),
    }
    assert [bucket.total for bucket in report.buckets] == [Decimal("140.5"), Decimal("96.25")]
    [body] = moto_aws.cost_explorer_request_bodies()
    assert body["GroupBy"] == [{"Type": "DIMENSION", "Key": "SERVICE"}]
    assert body["Filter"] == {
        "Tags": {"Key": "team", "Values": ["payments"], "MatchOptions": ["EQUALS"]}
    }


async def test_untagged_filter_asks_for_absent_tag(
    moto_aws: MotoServer, gateway: CostExplorerGateway
) -> None:
    moto_aws.queue_cost_results(
        [cost_and_usage_response([result_by_time(day(1), total=Decimal("13.7"))])]
    )

    report = await gateway.cost_and_usage(day(1), Granularity.DAILY, filter_tag=("team", ""))

    assert report.total == Decimal("13.7")
    [body] = moto_aws.cost_explorer_request_bodies()
    assert body["Filter"] == {"Tags": {"Key": "team", "MatchOptions": ["ABSENT"]}}


async def test_pages_are_followed_and_merged(
    moto_aws: MotoServer, gateway: CostExplorerGateway, moto_clients: AwsClients
) -> None:
    first = cost_and_usage_response(
        [
            result_by_time(
                day(1), groups={"team$payments": Decimal("100"), "team$search": Decimal("50")}
            ),
            result_by_time(day(2), groups={"team$payments": Decimal("101")}),
        ],
        group_by="team",
        next_page_token="page-2",
    )
    # Day 2's groups continue on the second page, as Cost Explorer splits long group lists.
    second = cost_and_usage_response(
        [
            result_by_time(day(2), groups={"team$search": Decimal("49.5")}),
            result_by_time(day(3), groups={"team$payments": Decimal("99"), "team$": Decimal("7")}),
        ],
        group_by="team",
    )
    moto_aws.queue_cost_results([first, second])

    report = await gateway.cost_and_usage(
        DateRange(start=date(2026, 3, 1), end=date(2026, 3, 4)), Granularity.DAILY, group_by="team"
    )

    assert [bucket.total for bucket in report.buckets] == [
        Decimal("150"),
        Decimal("150.5"),
        Decimal("106"),
    ]
    assert {g.key: g.amount for g in report.buckets[1].groups} == {
        "payments": Decimal("101"),
        "search": Decimal("49.5"),
    }
    assert report.by_group() == {
        "payments": Decimal("300"),
        "search": Decimal("99.5"),
        "": Decimal("7"),
    }
    assert report.requests == 2
    assert gateway.requests_made == 2
    assert moto_clients.http_requests == 2
    bodies = moto_aws.cost_explorer_request_bodies()
    assert [body.get("NextPageToken") for body in bodies] == [None, "page-2"]
    assert bodies[0]["TimePeriod"] == bodies[1]["TimePeriod"]


async def test_cost_explorer_is_reached_through_aws_endpoint_url_in_us_east_1(
    moto_aws: MotoServer,
) -> None:
    clients = AwsClients(AwsConfig(region="eu-central-1"))

    cost_explorer = clients.cost_explorer()
    ec2 = clients.ec2()

    assert cost_explorer.meta.endpoint_url == moto_aws.url
    assert cost_explorer.meta.region_name == "us-east-1"
    assert ec2.meta.endpoint_url == moto_aws.url
    assert ec2.meta.region_name == "eu-central-1"


async def test_a_forecast_moto_cannot_make_is_an_error_and_costs_no_other_query(
    moto_aws: MotoServer, gateway: CostExplorerGateway
) -> None:
    # moto has no GetCostForecast: it answers HTTP 500, which botocore retries, then fails.
    # The gateway says so; it makes no fallback query (the caller projects from what it has).
    with pytest.raises(AwsServerError):
        await gateway.forecast(DateRange.month_of(date(2026, 3, 18)), filter_tag=("team", "search"))

    assert moto_aws.cost_explorer_request_bodies() == []
    assert gateway.requests_made == 1


async def test_forecast_of_a_past_period_is_a_programming_error(
    moto_aws: MotoServer, gateway: CostExplorerGateway
) -> None:
    with pytest.raises(ValueError, match="nothing left to forecast"):
        await gateway.forecast(DateRange.month_of(date(2026, 2, 1)))


async def test_missing_credentials_are_named_and_nothing_is_sent(
    moto_server: MotoServer,
    aws_isolated_env: object,
    aws_test_config: AwsConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_server.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    gateway = CostExplorerGateway(AwsClients(aws_test_config), ManualClock(TODAY))

    with pytest.raises(AwsCredentialsMissing) as raised:
        await gateway.cost_and_usage(day(1), Granularity.DAILY)

    assert str(raised.value) == "AWS credentials are not configured"

    assert moto_server.cost_explorer_request_bodies() == []


def test_settings_endpoint_is_passed_only_when_boto3_cannot_see_it(
    aws_isolated_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_dotenv = Settings(_env_file=None, aws_endpoint_url="http://127.0.0.1:4566")
    assert AwsConfig.from_settings(from_dotenv).endpoint_url == "http://127.0.0.1:4566"

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", "http://127.0.0.1:4567")
    config = AwsConfig.from_settings(Settings(_env_file=None))

    assert config.endpoint_url is None
    # boto3 then applies its own precedence: the per-service variable wins.
    assert AwsClients(config).cost_explorer().meta.endpoint_url == "http://127.0.0.1:4567"
