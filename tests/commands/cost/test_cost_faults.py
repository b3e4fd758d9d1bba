"""What people see when Cost Explorer cannot answer: a clear message, never a stack trace.
Failures moto cannot produce come from a loopback server speaking Cost Explorer's protocol,
parsed by botocore itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from decimal import Decimal

import pytest

from core.catalog import Catalog
from core.clock import ManualClock
from core.config import Settings
from integrations.aws.cost_explorer import CostExplorerGateway
from integrations.aws.cost_types import DateRange
from integrations.aws.session import AwsClients, AwsConfig
from integrations.sandbox.aws_seed import cost_and_usage_response, result_by_time
from integrations.sandbox.slack_api import RunningFakeSlack
from tests.commands.cost.harness import CostBot, cost_bot, text_of
from tests.fixtures.slack import DEVELOPER
from tests.integrations.aws.ce_stub import CostExplorerStub, Reply, start_cost_explorer_stub

USAGE = "GetCostAndUsage"
TAGS = "ListCostAllocationTags"


@pytest.fixture
def stub(
    aws_dummy_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CostExplorerStub]:
    for running in start_cost_explorer_stub():
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        yield running.stub


@pytest.fixture
async def bot(
    stub: CostExplorerStub,
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    aws_test_config: AwsConfig,
) -> AsyncIterator[CostBot]:
    def gateway(clock: ManualClock) -> CostExplorerGateway:
        return CostExplorerGateway(AwsClients(aws_test_config), clock)

    async with cost_bot(bot_settings, catalog, fake_slack, cost_source=gateway) as running:
        yield running


def assert_friendly(text: str) -> None:
    assert "Traceback" not in text and "Something went wrong" not in text
    assert "botocore" not in text and "ClientError" not in text


async def test_access_denied_names_the_permission(bot: CostBot, stub: CostExplorerStub) -> None:
    stub.always(
        USAGE, Reply.error("AccessDeniedException", "not authorized to perform ce:GetCostAndUsage")
    )

    reply = await bot.command(DEVELOPER, "/cost", "")

    assert reply["text"] == ":no_entry: the bot's IAM role may not call ce:GetCostAndUsage"
    assert reply["response_type"] == "ephemeral"


async def test_throttling_is_retried_then_explained(
    bot: CostBot, stub: CostExplorerStub, aws_test_config: AwsConfig
) -> None:
    stub.always(USAGE, Reply.error("ThrottlingException", "Rate exceeded"))

    reply = await bot.command(DEVELOPER, "/cost", "")

    assert reply["text"].startswith(":hourglass: Cost Explorer is throttling")
    assert len(stub.received(USAGE)) == aws_test_config.max_attempts
    assert_friendly(reply["text"])


async def test_cost_explorer_not_enabled(bot: CostBot, stub: CostExplorerStub) -> None:
    stub.always(USAGE, Reply.error("DataUnavailableException", "Data is not available"))

    reply = await bot.command(DEVELOPER, "/cost", "")

    assert "Cost Explorer has no data yet (is it enabled for this account?)" in reply["text"]
    assert_friendly(reply["text"])


async def test_a_tag_key_that_is_not_activated(bot: CostBot, stub: CostExplorerStub) -> None:
    day = DateRange(start=date(2026, 11, 2), end=date(2026, 11, 3))
    stub.always(
        USAGE,
        Reply.ok(cost_and_usage_response([result_by_time(day, groups={})], group_by="SERVICE")),
    )
    stub.always(
        TAGS,
        Reply.ok(
            {
                "CostAllocationTags": [
                    {"TagKey": "team", "Type": "UserDefined", "Status": "Inactive"}
                ]
            }
        ),
    )

    reply = await bot.command(DEVELOPER, "/cost", "")

    assert "tag team is not activated for cost allocation" in reply["text"]
    assert "Cost allocation tags" in reply["text"]
    assert_friendly(reply["text"])


async def test_failures_are_not_cached(bot: CostBot, stub: CostExplorerStub) -> None:
    stub.then(
        USAGE,
        Reply.error("ThrottlingException", "Rate exceeded"),
        Reply.error("ThrottlingException", "Rate exceeded"),
    )
    day = DateRange(start=date(2026, 11, 2), end=date(2026, 11, 3))
    stub.always(
        USAGE,
        Reply.ok(
            cost_and_usage_response(
                [result_by_time(day, groups={"AWS Lambda": Decimal("12.5")})], group_by="SERVICE"
            )
        ),
    )

    first = await bot.command(DEVELOPER, "/cost", "")
    second = await bot.command(DEVELOPER, "/cost", "")

    assert "throttling" in first["text"]
    assert "AWS Lambda: $12.50" in str(second["blocks"])


async def test_no_credentials_at_all(
    aws_isolated_env: object, bot_settings: Settings, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    async with cost_bot(bot_settings, catalog, fake_slack) as bot:
        reply = await bot.command(DEVELOPER, "/cost", "")

    assert reply["text"] == (
        ":x: Cost Explorer is not set up for forgebot: it has no AWS credentials. "
        "The platform team can give it a role with ce:GetCostAndUsage."
    )


async def test_cost_explorer_forecast_is_added_to_the_month_so_far(
    stub: CostExplorerStub,
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    aws_test_config: AwsConfig,
) -> None:
    days = [DateRange(start=date(2026, 11, d), end=date(2026, 11, d + 1)) for d in range(1, 25)]
    # $100 a day so far (today, the 24th, has no cost yet); Cost Explorer expects $812.34 more.
    stub.always(
        USAGE,
        Reply.ok(
            cost_and_usage_response(
                [result_by_time(day, groups={"AWS Lambda": Decimal("100")}) for day in days[:-1]],
                group_by="SERVICE",
            )
        ),
    )
    stub.always(
        "GetCostForecast",
        Reply.ok(
            {
                "Total": {"Amount": "812.34", "Unit": "USD"},
                "ForecastResultsByTime": [
                    {
                        "TimePeriod": {"Start": "2026-11-24", "End": "2026-12-01"},
                        "MeanValue": "812.34",
                        "PredictionIntervalLowerBound": "700",
                        "PredictionIntervalUpperBound": "900",
                    }
                ],
            }
        ),
    )

    def gateway(clock: ManualClock) -> CostExplorerGateway:
        return CostExplorerGateway(AwsClients(aws_test_config), clock)

    async with cost_bot(
        bot_settings, catalog, fake_slack, cost_source=gateway, forecast="cost-explorer"
    ) as bot:
        reply = await bot.command(DEVELOPER, "/cost", "")
        again = await bot.command(DEVELOPER, "/cost", "")

    shown = text_of(reply)
    # $2,300.00 spent by the 23rd plus Cost Explorer's $812.34 for the rest of the month.
    assert "Forecast for November: *$3,112.34*" in shown
    assert "62% of the $5,000.00 budget (within budget)" in shown
    assert "Cost Explorer forecast (80% prediction interval)" in shown
    [asked] = stub.received("GetCostForecast")
    assert asked.body["TimePeriod"] == {"Start": "2026-11-24", "End": "2026-12-01"}
    assert asked.body["Filter"]["Tags"]["Values"] == ["payments"]
    assert text_of(again) == shown, "the forecast is cached with the report"
    assert len(stub.received(USAGE)) == 1


async def test_without_forecast_permission_the_projection_stands_in(
    stub: CostExplorerStub,
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    aws_test_config: AwsConfig,
) -> None:
    days = [DateRange(start=date(2026, 11, d), end=date(2026, 11, d + 1)) for d in range(1, 24)]
    stub.always(
        USAGE,
        Reply.ok(
            cost_and_usage_response(
                [result_by_time(day, groups={"AWS Lambda": Decimal("100")}) for day in days],
                group_by="SERVICE",
            )
        ),
    )
    stub.always(
        "GetCostForecast",
        Reply.error("AccessDeniedException", "not authorized to perform ce:GetCostForecast"),
    )

    def gateway(clock: ManualClock) -> CostExplorerGateway:
        return CostExplorerGateway(AwsClients(aws_test_config), clock)

    async with cost_bot(
        bot_settings, catalog, fake_slack, cost_source=gateway, forecast="cost-explorer"
    ) as bot:
        first = text_of(await bot.command(DEVELOPER, "/cost", ""))
        second = text_of(await bot.command(DEVELOPER, "/cost", ""))

    # $2,300 by the 23rd, then $100 a day for the 7 days left.
    assert "Forecast for November: *$3,000.00*" in first
    assert "linear projection of the average daily cost over the last 14 days" in first
    assert second == first
    assert len(stub.received("GetCostForecast")) == 1, "not asked again at once"


def _hundred_a_day(last_day: int = 23) -> Reply:
    days = [DateRange(start=date(2026, 11, d), end=date(2026, 11, d + 1)) for d in range(1, 24)]
    return Reply.ok(
        cost_and_usage_response(
            [result_by_time(day, groups={"AWS Lambda": Decimal("100")}) for day in days],
            group_by="SERVICE",
        )
    )


async def test_throttled_after_expiry_shows_the_last_known_figure_with_its_age(
    bot: CostBot, stub: CostExplorerStub
) -> None:
    from datetime import timedelta

    stub.always(USAGE, _hundred_a_day())
    fresh = text_of(await bot.command(DEVELOPER, "/cost", ""))
    assert "*$2,300.00* from Nov 1 – Nov 24" in fresh

    # Eight hours later the cached answer has expired (TTL 6 h) and Cost Explorer throttles.
    bot.clock.advance(timedelta(hours=8))
    bot.client.clock_offset += 8 * 3600
    stub.always(USAGE, Reply.error("ThrottlingException", "Rate exceeded"))
    stale = text_of(await bot.command(DEVELOPER, "/cost", ""))

    assert "*$2,300.00* from Nov 1 – Nov 24" in stale
    assert (
        ":warning: Cost Explorer could not be asked again (Cost Explorer is throttling; try "
        "again in a minute), so these are the last known figures, 8 h old."
    ) in stale
    assert "AWS Cost Explorer data, 8 h old" in stale
    assert_friendly(stale)

    # Once Cost Explorer answers again, the figures are fresh (and no longer flagged).
    stub.always(USAGE, _hundred_a_day())
    again = text_of(await bot.command(DEVELOPER, "/cost", ""))
    assert ":warning:" not in again and "AWS Cost Explorer data, just now" in again


async def test_an_endpoint_that_cannot_forecast_is_asked_once_for_every_scope(
    stub: CostExplorerStub,
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    aws_test_config: AwsConfig,
) -> None:
    stub.always(USAGE, _hundred_a_day())
    stub.always("GetCostForecast", Reply.error("InternalServerError", "boom", status=500))

    def gateway(clock: ManualClock) -> CostExplorerGateway:
        return CostExplorerGateway(AwsClients(aws_test_config), clock)

    async with cost_bot(
        bot_settings, catalog, fake_slack, cost_source=gateway, forecast="cost-explorer"
    ) as bot:
        payments = text_of(await bot.command(DEVELOPER, "/cost", "team payments"))
        search = text_of(await bot.command(DEVELOPER, "/cost", "team search"))
        platform = text_of(await bot.command(DEVELOPER, "/cost", "team platform"))
        forecast_calls = bot.runtime.ctx.cost_source.requests_made  # type: ignore[union-attr]

    for shown in (payments, search, platform):
        assert "Forecast for November: *$3,000.00*" in shown
        assert (
            "linear projection of the average daily cost over the last 14 days (Nov 10 – Nov 23); "
            "Cost Explorer's forecast is unavailable (HTTP 500 from GetCostForecast)"
        ) in shown
    # One GetCostForecast (however many HTTP attempts botocore made), three reports, and no
    # fallback query.
    assert len(stub.received(USAGE)) == 3
    assert forecast_calls == 4
