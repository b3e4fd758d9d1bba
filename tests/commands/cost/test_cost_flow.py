"""/cost end to end: signed slash commands to the real app, boto3 against moto in server
mode with Cost Explorer answers injected through moto's configuration API, and what the
fake Slack received."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal

import pytest

from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import Period
from commands.cost.service import cost_query
from core.catalog import Catalog
from core.config import Settings
from core.pricing import money
from integrations.sandbox.aws_seed import (
    DEMO_DAILY_SPEND,
    EC2_COMPUTE,
    RDS,
    S3,
    WEEKEND_FACTOR,
    DemoCostModel,
    seed_demo_costs,
)
from integrations.sandbox.slack_api import RunningFakeSlack
from tests.commands.cost.harness import NOW, CostBot, cost_bot, text_of
from tests.fixtures.aws import MotoServer
from tests.fixtures.slack import DEVELOPER, PLATFORM, STRANGER

TODAY = NOW.date()
PAYMENTS = Scope(ScopeKind.TEAM, "payments")


def spend(team: str, start: date, end: date) -> Decimal:
    """The injected data, summed day by day here (not by the code under test)."""
    total = Decimal(0)
    day = start
    while day < end:
        if day < TODAY:
            weekday = sum(DEMO_DAILY_SPEND[team].values(), Decimal(0))
            total += weekday * (WEEKEND_FACTOR if day.weekday() >= 5 else 1)
        day += timedelta(days=1)
    return total


def seed(
    moto: MotoServer, catalog: Catalog, *queries: tuple[Scope, Period], per_page: int | None = None
) -> None:
    seed_demo_costs(
        moto.url,
        [cost_query(scope, period, TODAY, catalog) for scope, period in queries],
        model=DemoCostModel(today=TODAY),
        per_page=per_page,
    )


@pytest.fixture
async def bot(
    bot_settings: Settings, catalog: Catalog, fake_slack: RunningFakeSlack, moto_aws: MotoServer
) -> AsyncIterator[CostBot]:
    async with cost_bot(bot_settings, catalog, fake_slack) as running:
        yield running


async def test_cost_of_my_team_this_month(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog
) -> None:
    seed(moto_aws, catalog, (PAYMENTS, Period.THIS_MONTH))

    reply = await bot.command(DEVELOPER, "/cost", "")
    shown = text_of(reply)

    total = spend("payments", date(2026, 11, 1), date(2026, 11, 25))
    previous = spend("payments", date(2026, 10, 1), date(2026, 10, 25))
    assert reply["response_type"] == "ephemeral"
    assert "Cost of team payments, this month" in shown
    assert f"*{money(total, 'USD')}* from Nov 1 – Nov 24" in shown
    # The change compares complete days only: Nov 1-23 (today, the 24th, is not over)
    # against Oct 1-23, and names them.
    complete = spend("payments", date(2026, 11, 1), date(2026, 11, 24))
    previous = spend("payments", date(2026, 10, 1), date(2026, 10, 24))
    change = ((complete - previous) / previous * 100).quantize(Decimal(1))
    sign = "+" if change > 0 else ""
    assert (
        f"{sign}{change}%: Nov 1 – Nov 23 ({money(complete, 'USD')}) vs Oct 1 – Oct 23 "
        f"({money(previous, 'USD')}), complete days"
    ) in shown, shown
    # Top services, largest first, with their share of the total.
    ec2 = spend_of_service("payments", EC2_COMPUTE)
    assert f"1. {EC2_COMPUTE}: {money(ec2, 'USD')}" in shown
    assert f"2. {RDS}:" in shown and f"3. {S3}:" in shown
    # Forecast: the month so far plus the average of the last 14 days for the 7 days left.
    so_far = spend("payments", date(2026, 11, 1), TODAY)
    basis = spend("payments", TODAY - timedelta(days=14), TODAY)
    forecast = (so_far + basis / 14 * 7).quantize(Decimal("0.01"))
    used = (forecast / 5000 * 100).quantize(Decimal(1))
    assert f"Forecast for November: *{money(forecast, 'USD')}*" in shown
    assert f"{used}% of the $5,000.00 budget (within budget)" in shown
    assert "linear projection of the average daily cost over the last 14 days" in shown
    assert "AWS Cost Explorer data, just now" in shown
    assert len(moto_aws.cost_explorer_request_bodies()) == 1


def spend_of_service(team: str, service: str) -> Decimal:
    total = Decimal(0)
    day = date(2026, 11, 1)
    while day < TODAY:
        total += DEMO_DAILY_SPEND[team][service] * (WEEKEND_FACTOR if day.weekday() >= 5 else 1)
        day += timedelta(days=1)
    return total


async def test_request_is_one_cost_explorer_query_by_service_filtered_by_team_tag(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog
) -> None:
    seed(moto_aws, catalog, (Scope(ScopeKind.TEAM, "search"), Period.LAST_MONTH))

    reply = await bot.command(DEVELOPER, "/forge", "cost team search last-month")

    [body] = moto_aws.cost_explorer_request_bodies()
    assert body["Granularity"] == "DAILY"
    assert body["GroupBy"] == [{"Type": "DIMENSION", "Key": "SERVICE"}]
    assert body["Filter"] == {
        "Tags": {"Key": "team", "Values": ["search"], "MatchOptions": ["EQUALS"]}
    }
    october = spend("search", date(2026, 10, 1), date(2026, 11, 1))
    september = spend("search", date(2026, 9, 1), date(2026, 10, 1))
    shown = text_of(reply)
    assert f"*{money(october, 'USD')}* from Oct 1 – Oct 31" in shown
    # 31 days against 30: the daily averages are compared, and the message says so.
    change = ((october / 31 - september / 30) / (september / 30) * 100).quantize(Decimal(1))
    sign = "+" if change > 0 else ""
    assert (
        f"{sign}{change}% per day: Oct 1 – Oct 31 ({money(october / 31, 'USD')}/day over 31 "
        f"days) vs Sep 1 – Sep 30 ({money(september / 30, 'USD')}/day over 30 days)"
    ) in shown, shown


async def test_paginated_answers_are_merged(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog
) -> None:
    seed(moto_aws, catalog, (PAYMENTS, Period.LAST_30_DAYS), per_page=7)

    reply = await bot.command(DEVELOPER, "/cost", "payments 30d")

    pages = moto_aws.cost_explorer_request_bodies()
    assert len(pages) > 5 and all("NextPageToken" in p for p in pages[1:])
    # The last 30 complete days: Oct 25 - Nov 23.
    total = spend("payments", TODAY - timedelta(days=30), TODAY)
    assert f"*{money(total, 'USD')}* from Oct 25 – Nov 23" in text_of(reply)


async def test_second_ask_is_answered_from_the_cache_and_says_how_old(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog
) -> None:
    seed(moto_aws, catalog, (PAYMENTS, Period.THIS_MONTH))
    await bot.command(DEVELOPER, "/cost", "")
    gateway = bot.runtime.ctx.cost_source  # type: ignore[union-attr]
    sent = gateway.requests_made  # type: ignore[union-attr]

    bot.clock.advance(timedelta(hours=2, minutes=5))
    bot.client.clock_offset += 7500
    reply = await bot.command(PLATFORM, "/forge", "cost team payments")

    assert gateway.requests_made == sent  # type: ignore[union-attr]
    assert "AWS Cost Explorer data, 2 h 5 min old" in text_of(reply)


async def test_chart_is_uploaded_to_the_channel(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog
) -> None:
    seed(moto_aws, catalog, (PAYMENTS, Period.THIS_MONTH))

    await bot.command(DEVELOPER, "/cost", "chart")

    upload = await bot.upload()
    assert upload.args["channel_id"] == DEVELOPER.channel_id
    [file] = upload.args["files"]
    content = bot.slack.uploaded(file["id"])
    assert content is not None and content.startswith(b"\x89PNG\r\n\x1a\n")


async def test_empty_results_say_so(bot: CostBot, moto_aws: MotoServer) -> None:
    # Nothing queued: moto answers with no cost at all.
    reply = await bot.command(DEVELOPER, "/cost", "env pv-nothing 7d")

    shown = text_of(reply)
    assert "No cost recorded for environment pv-nothing" in shown
    assert "`forgebot:environment` tag" in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team nobody", "There is no team called `nobody`"),
        ("payments fortnight", "`fortnight` is not a period or a scope"),
        ("service", "`service` needs a name"),
    ],
)
async def test_bad_input_is_explained(bot: CostBot, text: str, expected: str) -> None:
    reply = await bot.command(DEVELOPER, "/cost", text)

    assert expected in reply["text"]
    assert "Usage" in reply["text"]


async def test_someone_in_no_team_is_asked_to_name_one(bot: CostBot) -> None:
    reply = await bot.command(STRANGER, "/cost", "")

    assert "You are not in a team" in reply["text"]


async def test_environments_show_their_actual_cost(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog
) -> None:
    from integrations.aws.cost_types import DateRange
    from integrations.sandbox.aws_seed import cost_and_usage_response, result_by_time
    from integrations.sandbox.slack_payloads import app_home_opened
    from storage import environments as env_repo
    from storage.models import EnvironmentRecord, EnvState

    assert bot.runtime.db is not None
    await bot.runtime.db.run(
        lambda s: env_repo.insert(
            s,
            EnvironmentRecord(
                name="pv-checkout",
                live_name="pv-checkout",
                template="web-preview",
                size="S",
                team="payments",
                owner_user_id=DEVELOPER.user_id,
                cluster="dev-cluster",
                state=EnvState.ACTIVE,
                ttl_seconds=259200,
                expires_at=NOW + timedelta(days=2),
                requested_at=NOW,
                updated_at=NOW,
            ),
        )
    )
    days = [DateRange(start=date(2026, 11, d), end=date(2026, 11, d + 1)) for d in (22, 23)]
    moto_aws.queue_cost_results(
        [
            cost_and_usage_response(
                [result_by_time(day, groups={EC2_COMPUTE: Decimal("3.15")}) for day in days],
                group_by="SERVICE",
            )
        ]
    )

    reply = await bot.command(DEVELOPER, "/env", "show pv-checkout")

    assert (
        "Actual cost Nov 1 – Nov 24: $6.30 (AWS Cost Explorer unblended cost, UTC days, "
        "tag forgebot:environment)"
    ) in text_of(reply)
    [body] = moto_aws.cost_explorer_request_bodies()
    assert body["Filter"]["Tags"] == {
        "Key": "forgebot:environment",
        "Values": ["pv-checkout"],
        "MatchOptions": ["EQUALS"],
    }

    await bot.client.send(app_home_opened(DEVELOPER, event_id="Ev0COST1"))
    [published] = await bot.slack.until_call("views.publish", timeout=20)
    assert "Actual cost Nov 1 – Nov 24: $6.30" in str(published.args["view"])


async def test_a_chart_slack_refuses_is_explained(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog
) -> None:
    seed(moto_aws, catalog, (PAYMENTS, Period.THIS_MONTH))
    bot.slack.fail_next(1, method="files.getUploadURLExternal", status=400)

    await bot.command(DEVELOPER, "/cost", "chart")

    calls = await bot.slack.until(
        lambda calls: (
            [
                c
                for c in calls
                if c.method == "response_url"
                and "could not post the chart" in c.args.get("text", "")
            ]
            or None
        ),
        timeout=20,
    )
    assert calls[0].args["text"].startswith(":x: I could not post the chart here (")
    assert calls[0].args["response_type"] == "ephemeral"


async def test_the_catalog_chooses_the_cost_metric_and_the_answer_names_it(
    bot_settings: Settings, catalog: Catalog, fake_slack: RunningFakeSlack, moto_aws: MotoServer
) -> None:
    amortized = catalog.model_copy(
        update={"cost": catalog.cost.model_copy(update={"metric": "amortized"})}
    )
    seed(moto_aws, amortized, (PAYMENTS, Period.THIS_MONTH))
    async with cost_bot(bot_settings, amortized, fake_slack) as running:
        shown = text_of(await running.command(DEVELOPER, "/cost", ""))

    [body] = moto_aws.cost_explorer_request_bodies()
    assert body["Metrics"] == ["AmortizedCost"]
    total = spend("payments", date(2026, 11, 1), date(2026, 11, 25))
    assert f"*{money(total, 'USD')}* from Nov 1 – Nov 24" in shown
    assert "amortized cost · days are UTC days" in shown
