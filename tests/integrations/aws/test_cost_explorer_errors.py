"""Failures moto cannot produce, from a loopback server speaking Cost Explorer's protocol:
botocore parses each answer itself and the gateway turns it into a domain error."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core.clock import ManualClock
from core.errors import DependencyUnavailable, NotAuthorized, UserInputError
from integrations.aws.cost_explorer import TAG_LOOKUP_RETRY, CostExplorerGateway
from integrations.aws.cost_types import DateRange, ForecastMethod, Granularity
from integrations.aws.errors import (
    AwsAccessDenied,
    AwsCredentialsRejected,
    AwsRequestRejected,
    AwsServerError,
    AwsThrottled,
    AwsUnreachable,
    BillExpired,
    CostDataUnavailable,
    TagNotActivated,
)
from integrations.aws.session import AwsClients, AwsConfig
from integrations.sandbox.aws_seed import cost_and_usage_response, result_by_time
from tests.integrations.aws.ce_stub import (
    CostExplorerStub,
    Reply,
    RunningStub,
    start_cost_explorer_stub,
)

TODAY = datetime(2026, 3, 18, 10, 30, tzinfo=UTC)
MARCH = DateRange.month_of(date(2026, 3, 1))
USAGE = "GetCostAndUsage"
FORECAST = "GetCostForecast"
TAGS = "ListCostAllocationTags"


def day(n: int) -> DateRange:
    return DateRange(start=date(2026, 3, n), end=date(2026, 3, n + 1))


@pytest.fixture
def running_stub(
    aws_dummy_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningStub]:
    for running in start_cost_explorer_stub():
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        yield running


@pytest.fixture
def stub(running_stub: RunningStub) -> CostExplorerStub:
    return running_stub.stub


@pytest.fixture
def gateway(running_stub: RunningStub, aws_test_config: AwsConfig) -> CostExplorerGateway:
    return CostExplorerGateway(AwsClients(aws_test_config), ManualClock(TODAY))


def only_untagged(key: str, amount: str) -> Reply:
    """What Cost Explorer answers when grouping by a tag it does not know as a cost tag."""
    return Reply.ok(
        cost_and_usage_response(
            [result_by_time(day(1), groups={f"{key}$": Decimal(amount)})], group_by=key
        )
    )


def tag_status(key: str, status: str) -> Reply:
    return Reply.ok(
        {"CostAllocationTags": [{"TagKey": key, "Type": "UserDefined", "Status": status}]}
    )


async def test_access_denied_names_the_missing_permission(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.always(
        USAGE,
        Reply.error(
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/forgebot/x is not authorized to "
            "perform: ce:GetCostAndUsage",
        ),
    )

    with pytest.raises(AwsAccessDenied) as raised:
        await gateway.cost_and_usage(day(1), Granularity.DAILY)

    assert str(raised.value) == "the bot's IAM role may not call ce:GetCostAndUsage"
    assert isinstance(raised.value, NotAuthorized)
    [request] = stub.received(USAGE)  # not retried
    assert request.authorization is not None
    assert request.authorization.startswith("AWS4-HMAC-SHA256 Credential=testing/")


@pytest.mark.parametrize("code", ["ThrottlingException", "LimitExceededException"])
async def test_throttling_is_retried_then_reported(
    stub: CostExplorerStub, gateway: CostExplorerGateway, aws_test_config: AwsConfig, code: str
) -> None:
    stub.always(USAGE, Reply.error(code, "Rate exceeded"))

    with pytest.raises(AwsThrottled) as raised:
        await gateway.cost_and_usage(day(1), Granularity.DAILY)

    assert str(raised.value) == "Cost Explorer is throttling; try again in a minute"
    assert len(stub.received(USAGE)) == aws_test_config.max_attempts


async def test_throttling_that_clears_is_invisible(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.then(
        USAGE,
        Reply.error("ThrottlingException", "Rate exceeded"),
        Reply.ok(cost_and_usage_response([result_by_time(day(1), total=Decimal("8.8"))])),
    )

    report = await gateway.cost_and_usage(day(1), Granularity.DAILY)

    assert report.total == Decimal("8.8")
    assert len(stub.received(USAGE)) == 2
    assert gateway.requests_made == 1  # one billed call; the retry is botocore's


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        (
            "DataUnavailableException",
            CostDataUnavailable,
            "Cost Explorer has no data yet (is it enabled for this account?)",
        ),
        (
            "BillExpirationException",
            BillExpired,
            "Cost Explorer no longer has the bill for that period; choose a more recent one "
            "(it keeps 13 months by default)",
        ),
        (
            "ValidationException",
            AwsRequestRejected,
            "Cost Explorer rejected the request: Start date (and hour) should be before end date",
        ),
        (
            "UnrecognizedClientException",
            AwsCredentialsRejected,
            "AWS rejected the bot's credentials (UnrecognizedClientException); they may have expired",
        ),
    ],
)
async def test_cost_explorer_errors_become_domain_errors(
    stub: CostExplorerStub,
    gateway: CostExplorerGateway,
    code: str,
    error: type[Exception],
    message: str,
) -> None:
    stub.always(USAGE, Reply.error(code, "Start date (and hour) should be before end date"))

    with pytest.raises(error) as raised:
        await gateway.cost_and_usage(day(1), Granularity.DAILY)

    assert str(raised.value) == message
    assert len(stub.received(USAGE)) == 1


async def test_server_errors_are_retried_then_reported_unavailable(
    stub: CostExplorerStub, gateway: CostExplorerGateway, aws_test_config: AwsConfig
) -> None:
    stub.always(USAGE, Reply.error("InternalServerException", "oops", status=503))

    with pytest.raises(AwsServerError) as raised:
        await gateway.cost_and_usage(day(1), Granularity.DAILY)

    assert str(raised.value) == "Cost Explorer is unavailable (HTTP 503); try again later"
    assert isinstance(raised.value, DependencyUnavailable)
    assert len(stub.received(USAGE)) == aws_test_config.max_attempts


async def test_grouping_by_an_inactive_tag_says_so(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.always(USAGE, only_untagged("team", "123.45"))
    stub.always(TAGS, tag_status("team", "Inactive"))

    with pytest.raises(TagNotActivated) as raised:
        await gateway.cost_and_usage(day(1), Granularity.DAILY, group_by="team")

    assert str(raised.value) == "tag team is not activated for cost allocation"
    assert isinstance(raised.value, UserInputError)
    assert raised.value.usage is not None and "Cost allocation tags" in raised.value.usage
    [probe] = stub.received(TAGS)
    assert probe.body == {"TagKeys": ["team"]}


async def test_filtering_by_a_tag_cost_explorer_never_saw_says_so(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.always(
        USAGE, Reply.ok(cost_and_usage_response([result_by_time(day(1), total=Decimal(0))]))
    )
    stub.always(TAGS, Reply.ok({"CostAllocationTags": []}))

    with pytest.raises(TagNotActivated, match="tag owner is not activated"):
        await gateway.cost_and_usage(day(1), Granularity.DAILY, filter_tag=("owner", "ana"))


async def test_an_active_tag_without_cost_is_just_zero(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.always(
        USAGE, Reply.ok(cost_and_usage_response([result_by_time(day(1), total=Decimal(0))]))
    )
    stub.always(TAGS, tag_status("team", "Active"))

    report = await gateway.cost_and_usage(day(1), Granularity.DAILY, filter_tag=("team", "new"))

    assert report.total == 0
    assert len(stub.received(TAGS)) == 1


async def test_tagged_cost_needs_no_activation_check(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.always(
        USAGE, Reply.ok(cost_and_usage_response([result_by_time(day(1), total=Decimal(5))]))
    )

    report = await gateway.cost_and_usage(day(1), Granularity.DAILY, filter_tag=("team", "search"))

    assert report.total == Decimal(5)
    assert stub.received(TAGS) == []


async def test_when_tag_status_cannot_be_read_the_report_stands(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.always(USAGE, only_untagged("team", "40"))
    stub.always(TAGS, Reply.error("AccessDeniedException", "not authorized"))

    report = await gateway.cost_and_usage(day(1), Granularity.DAILY, group_by="team")

    assert report.by_group() == {"": Decimal("40")}
    assert len(stub.received(TAGS)) == 1  # a look-up that may fail is tried once


async def test_an_unavailable_tag_look_up_is_not_asked_again_for_an_hour(
    stub: CostExplorerStub, running_stub: RunningStub, aws_test_config: AwsConfig
) -> None:
    """moto, or a role without ce:ListCostAllocationTags: every empty report would otherwise
    wait for (and log) the same failure again."""
    clock = ManualClock(TODAY)
    gateway = CostExplorerGateway(AwsClients(aws_test_config), clock)
    stub.always(USAGE, only_untagged("team", "40"))
    stub.always(TAGS, Reply.error("InternalFailure", "not implemented", status=500))

    for _ in range(3):
        report = await gateway.cost_and_usage(day(1), Granularity.DAILY, group_by="team")
        assert report.by_group() == {"": Decimal("40")}
    assert len(stub.received(TAGS)) == 1

    clock.advance(TAG_LOOKUP_RETRY)
    stub.always(TAGS, tag_status("team", "Inactive"))
    with pytest.raises(TagNotActivated):
        await gateway.cost_and_usage(day(1), Granularity.DAILY, group_by="team")
    assert len(stub.received(TAGS)) == 2


async def test_cost_explorer_forecast_with_prediction_interval(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.always(
        FORECAST,
        Reply.ok(
            {
                "Total": {"Amount": "1834.2265", "Unit": "USD"},
                "ForecastResultsByTime": [
                    {
                        "TimePeriod": {"Start": "2026-03-18", "End": "2026-04-01"},
                        "MeanValue": "1834.2265",
                        "PredictionIntervalLowerBound": "1650.5",
                        "PredictionIntervalUpperBound": "2017.95",
                    }
                ],
            }
        ),
    )

    forecast = await gateway.forecast(MARCH, filter_tag=("team", "payments"))

    assert forecast.method is ForecastMethod.COST_EXPLORER
    assert forecast.amount == Decimal("1834.2265")
    assert (forecast.lower, forecast.upper) == (Decimal("1650.5"), Decimal("2017.95"))
    assert forecast.period == DateRange(start=date(2026, 3, 18), end=date(2026, 4, 1))
    assert forecast.explanation() == "Cost Explorer forecast (80% prediction interval)"
    [request] = stub.received(FORECAST)
    assert request.body == {
        "TimePeriod": {"Start": "2026-03-18", "End": "2026-04-01"},
        "Metric": "UNBLENDED_COST",
        "Granularity": "MONTHLY",
        "PredictionIntervalLevel": 80,
        "Filter": {"Tags": {"Key": "team", "Values": ["payments"], "MatchOptions": ["EQUALS"]}},
    }
    assert stub.received(USAGE) == []


async def test_forecast_without_history_is_an_error_and_costs_no_other_query(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.always(
        FORECAST, Reply.error("DataUnavailableException", "Insufficient amount of historical data")
    )

    with pytest.raises(CostDataUnavailable):
        await gateway.forecast(MARCH)

    assert stub.received(USAGE) == []


async def test_throttled_forecast_is_not_papered_over(
    stub: CostExplorerStub, gateway: CostExplorerGateway
) -> None:
    stub.always(FORECAST, Reply.error("LimitExceededException", "slow down"))

    with pytest.raises(AwsThrottled):
        await gateway.forecast(MARCH)

    assert stub.received(USAGE) == []


async def test_a_slow_answer_times_out_as_unreachable(
    stub: CostExplorerStub, running_stub: RunningStub
) -> None:
    stub.always(USAGE, Reply.slow(1.0))
    config = AwsConfig(max_attempts=1, connect_timeout=1.0, read_timeout=0.2)
    gateway = CostExplorerGateway(AwsClients(config), ManualClock(TODAY))

    with pytest.raises(AwsUnreachable) as raised:
        await gateway.cost_and_usage(day(1), Granularity.DAILY)

    assert str(raised.value) == "Cost Explorer is unreachable (timed out); try again later"


async def test_a_refused_connection_is_unreachable(
    aws_dummy_credentials: None, monkeypatch: pytest.MonkeyPatch, aws_test_config: AwsConfig
) -> None:
    # Bound but not listening: connecting is refused, and no other process can take the port.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed.getsockname()[1]}")
        gateway = CostExplorerGateway(AwsClients(aws_test_config), ManualClock(TODAY))

        with pytest.raises(AwsUnreachable) as raised:
            await gateway.cost_and_usage(day(1), Granularity.DAILY)

    assert str(raised.value) == "Cost Explorer is unreachable (connection failed); try again later"


async def test_concurrent_calls_are_bounded(
    stub: CostExplorerStub, running_stub: RunningStub
) -> None:
    stub.always(USAGE, Reply(200, cost_and_usage_response([]), delay_seconds=0.1))
    gateway = CostExplorerGateway(AwsClients(AwsConfig(concurrency=2)), ManualClock(TODAY))

    await asyncio.gather(*(gateway.cost_and_usage(day(n), Granularity.DAILY) for n in range(1, 9)))

    assert len(stub.received(USAGE)) == 8
    assert stub.most_in_flight == 2
