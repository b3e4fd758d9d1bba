"""Budgets and budget alerts end to end: catalog budgets, `/forge budget set` (platform only,
audited, stored over the catalog's), the list with actual and forecast, and alerts posted to
the team channel once per budget, month and threshold, even across restarts and replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session

from commands.cost.alerts import BudgetAlerts
from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import Period
from commands.cost.service import cost_query, team_budgets_query
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.aws_seed import DemoCostModel, seed_demo_costs
from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack
from storage import audit
from storage import cost as cost_repo
from storage import environments as env_repo
from storage import previews as previews_repo
from storage.models import EnvironmentRecord, EnvState
from tests.commands.cost.harness import NOW, CostBot, cost_bot, text_of
from tests.fixtures.aws import MotoServer
from tests.fixtures.slack import DEVELOPER, PLATFORM

TEAMS_IN_BUDGET_ORDER = ("payments", "platform", "search")


def seed_month(
    moto: MotoServer, catalog: Catalog, today: date, teams: tuple[str, ...] = TEAMS_IN_BUDGET_ORDER
) -> None:
    seed_demo_costs(
        moto.url,
        [cost_query(Scope(ScopeKind.TEAM, t), Period.THIS_MONTH, today, catalog) for t in teams],
        model=DemoCostModel(today=today),
    )


def seed_check(moto: MotoServer, catalog: Catalog, today: date) -> None:
    """What the budget check asks: one query for every team, grouped by the team tag."""
    seed_demo_costs(
        moto.url, [team_budgets_query(today, catalog)], model=DemoCostModel(today=today)
    )


@pytest.fixture
async def bot(
    bot_settings: Settings, catalog: Catalog, fake_slack: RunningFakeSlack, moto_aws: MotoServer
) -> AsyncIterator[CostBot]:
    async with cost_bot(bot_settings, catalog, fake_slack) as running:
        yield running


def alerts_of(bot: CostBot) -> BudgetAlerts:
    assert bot.runtime.ctx is not None
    alerts: BudgetAlerts = bot.runtime.ctx.budget_alerts
    return alerts


def posts(slack: RunningFakeSlack, channel: str) -> list[RecordedCall]:
    return slack.state.find("chat.postMessage", channel=channel)


def _forecast_only_alerts(bot: CostBot, catalog: Catalog) -> BudgetAlerts:
    """The bot's budget check with forecast thresholds of 60% only (no actual thresholds)."""
    assert bot.runtime.ctx is not None
    return BudgetAlerts(
        service=alerts_of(bot).service,
        catalog=catalog.model_copy(
            update={
                "schedules": catalog.schedules.model_copy(
                    update={"budget_forecast_thresholds": [60]}
                )
            }
        ),
        db=bot.runtime.ctx.db,
        clock=bot.clock,
        channel=bot.runtime.ctx.slack,
    )


async def test_budget_list_shows_actual_forecast_and_use(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog
) -> None:
    seed_month(moto_aws, catalog, NOW.date())

    shown = text_of(await bot.command(DEVELOPER, "/forge", "budget"))

    # payments: $2,964.35 so far in November of $5,000 (59%).
    assert "*team payments*: $2,964.35 of $5,000.00 (59% used)" in shown
    assert "*team search*: $1,499.85 of $2,000.00 (75% used)" in shown
    assert "*team platform*: $4,594.49 of $8,000.00 (57% used)" in shown
    assert "forecast $3,874.20 (77%)" in shown
    assert "budget from the catalog" in shown


async def test_platform_sets_a_budget_that_overrides_the_catalog(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog
) -> None:
    seed_month(moto_aws, catalog, NOW.date())

    refused = await bot.command(DEVELOPER, "/forge", "budget set payments 9000")
    assert refused["text"].startswith(":no_entry:")

    done = await bot.command(PLATFORM, "/forge", "budget set payments 3.5k")
    assert done["text"] == (
        ":white_check_mark: The monthly budget of team payments is now $3,500.00 (was $5,000.00)."
    )
    shown = text_of(await bot.command(DEVELOPER, "/forge", "budget"))
    assert "*team payments*: $2,964.35 of $3,500.00 (85% used)" in shown
    assert "budget set by <@U0PLATFORM>" in shown
    assert bot.runtime.db is not None
    entries = await bot.runtime.db.run(lambda s: audit.recent(s, command_prefix="budget"))
    outcomes = {(e.actor_user_id, e.arguments["text"], e.outcome) for e in entries}
    assert ("U0PLATFORM", "set payments 3.5k", "ok") in outcomes
    assert ("U0DEVELOPER", "set payments 9000", "denied") in outcomes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("set payments", "needs a team and a monthly amount"),
        ("set nobody 100", "There is no team called `nobody`"),
        ("set payments -5", "is not a monthly amount"),
        ("set payments lots", "is not a monthly amount"),
        ("raise payments 5", "is not a budget command"),
    ],
)
async def test_bad_budget_input(bot: CostBot, text: str, expected: str) -> None:
    reply = await bot.command(PLATFORM, "/forge", f"budget {text}")

    assert expected in reply["text"]


async def test_alerts_fire_once_per_budget_month_and_threshold(
    bot: CostBot,
    moto_aws: MotoServer,
    catalog: Catalog,
    bot_settings: Settings,
    fake_slack: RunningFakeSlack,
) -> None:
    await bot.command(PLATFORM, "/forge", "budget set payments 3500")
    seed_check(moto_aws, catalog, NOW.date())

    assert await alerts_of(bot).check() == 3
    [payments] = posts(fake_slack, "C0PAYMENTS")
    # 85% spent crosses 50% and 80% at once: one message, about the higher one; the
    # forecast over budget is told in the same message.
    assert payments.args["text"].startswith(":rotating_light: team payments has spent $2,964.35")
    assert "80% of its $3,500.00 budget reached (85%)" in payments.args["text"]
    assert "Top cost drivers" in str(payments.args["blocks"])
    assert "over budget" in str(payments.args["blocks"])
    await fake_slack.until_call("files.completeUploadExternal", count=3, timeout=20)

    # Again, and from a second replica on the same database: nothing new.
    assert await alerts_of(bot).check() == 0
    async with cost_bot(bot_settings, catalog, fake_slack) as replica:
        assert await alerts_of(replica).check() == 0
    assert len(posts(fake_slack, "C0PAYMENTS")) == 1
    assert bot.runtime.db is not None
    stored = await bot.runtime.db.run(lambda s: cost_repo.alerts_for_month(s, "2026-11"))
    assert {(a.team, a.kind, a.threshold) for a in stored if a.team == "payments"} == {
        ("payments", "actual", 50),
        ("payments", "actual", 80),
        ("payments", "forecast", 100),
    }
    assert all(a.state == "sent" and a.message_ts for a in stored)

    # Four days later payments has spent its whole budget and search 90% of its: news.
    later = NOW + timedelta(days=4)
    bot.clock.set(later)
    seed_check(moto_aws, catalog, later.date())
    assert await alerts_of(bot).check() == 2
    latest = posts(fake_slack, "C0PAYMENTS")[-1]
    assert "100% of its $3,500.00 budget reached" in latest.args["text"]
    assert (
        "80% of its $2,000.00 budget reached (90%)"
        in posts(fake_slack, "C0SEARCH")[-1].args["text"]
    )


async def test_the_daily_job_waits_for_the_alert_time_in_the_catalog_zone(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    assert catalog.schedules.timezone == "Europe/Berlin"
    assert catalog.schedules.budget_alert_time == "09:00"
    scheduler = bot.runtime.scheduler
    assert scheduler is not None and "budget-alerts" in scheduler.jobs
    seed_check(moto_aws, catalog, NOW.date())

    async def fire(at: datetime) -> bool:
        bot.clock.set(at)
        return await scheduler.run_now("budget-alerts", at)

    assert await fire(datetime(2026, 11, 24, 7, 55, tzinfo=UTC))  # 08:55 in Berlin
    assert fake_slack.state.find("chat.postMessage") == []

    assert await fire(datetime(2026, 11, 24, 8, 5, tzinfo=UTC))  # 09:05 in Berlin
    assert len(fake_slack.state.find("chat.postMessage")) == 3
    assert not await fire(datetime(2026, 11, 24, 8, 6, tzinfo=UTC)), "same slot: runs once"

    # Later the same day the job has done its work: not even Cost Explorer is asked.
    before = moto_aws.cost_explorer_request_bodies()
    assert await fire(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    assert moto_aws.cost_explorer_request_bodies() == before
    assert len(fake_slack.state.find("chat.postMessage")) == 3


async def test_an_alert_slack_refused_is_posted_at_the_next_run(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    seed_check(moto_aws, catalog, NOW.date())
    alerts = alerts_of(bot)
    fake_slack.fail_next(3, method="chat.postMessage", status=400)  # not retried

    await alerts.scheduled(NOW)
    assert alerts.failed == [
        "payments/team/payments",
        "platform/team/platform",
        "search/team/search",
    ]
    assert fake_slack.state.find("chat.postMessage") == []

    fake_slack.clear_faults()
    bot.clock.advance(timedelta(minutes=15))
    await alerts.scheduled(bot.clock.now())
    posted = fake_slack.state.find("chat.postMessage")
    assert sorted(c.args["channel"] for c in posted) == ["C0PAYMENTS", "C0PLATFORM", "C0SEARCH"]
    await alerts.scheduled(bot.clock.now() + timedelta(minutes=15))
    assert len(fake_slack.state.find("chat.postMessage")) == 3


async def test_a_forecast_over_budget_is_announced_on_its_own(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    seed_check(moto_aws, catalog, NOW.date())
    assert await alerts_of(bot).check() == 3  # each team past 50% of its budget

    # A lower budget is a new budget in force: its thresholds are armed again. Spend is
    # 78% of 3,800 (past 50%) and the forecast 102% (past 100%): one message, headed by the
    # actual spend, with the forecast in it.
    await bot.command(PLATFORM, "/forge", "budget set payments 3800")
    assert await alerts_of(bot).check() == 1

    latest = posts(fake_slack, "C0PAYMENTS")[-1]
    assert "50% of its $3,800.00 budget reached (78%)" in latest.args["text"]
    assert "102% of the $3,800.00 budget (over budget)" in str(latest.args["blocks"])


async def test_a_forecast_alone_is_announced_as_a_forecast(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    seed_check(moto_aws, catalog, NOW.date())
    # $2,964.35 spent is 49.4% of 6,000 (no actual threshold); the forecast $3,874.20 is 65%.
    await bot.command(PLATFORM, "/forge", "budget set payments 6000")
    await alerts_of(bot).check()
    assert posts(fake_slack, "C0PAYMENTS") == []
    # Forecast thresholds of 60% only: the forecast is announced on its own.
    assert bot.runtime.ctx is not None
    await _forecast_only_alerts(bot, catalog).check()
    [latest] = posts(fake_slack, "C0PAYMENTS")
    assert latest.args["text"] == (
        ":crystal_ball: team payments is forecast to spend $3,874.20 in November, "
        "65% of its $6,000.00 budget"
    )


async def test_a_budget_changed_mid_month_re_arms_its_thresholds(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    seed_check(moto_aws, catalog, NOW.date())
    await bot.command(PLATFORM, "/forge", "budget set payments 2000")
    assert await alerts_of(bot).check() == 3  # payments past 100% of 2,000; the others 50%
    assert (
        "100% of its $2,000.00 budget reached (148%)"
        in (posts(fake_slack, "C0PAYMENTS")[-1].args["text"])
    )

    # Raised to 5,500: $2,964.35 is 54% of it. The 50% of the budget in force was never
    # announced: one message. 80% and 100% are not reached; the forecast (70%) is under 100%.
    await bot.command(PLATFORM, "/forge", "budget set payments 5500")
    assert await alerts_of(bot).check() == 1
    latest = posts(fake_slack, "C0PAYMENTS")[-1]
    assert "50% of its $5,500.00 budget reached (54%)" in latest.args["text"]
    assert await alerts_of(bot).check() == 0, "once per threshold of the budget in force"

    # Setting the same amount again is no change: nothing is re-armed.
    await bot.command(PLATFORM, "/forge", "budget set payments 5500")
    assert await alerts_of(bot).check() == 0
    assert len(posts(fake_slack, "C0PAYMENTS")) == 2


async def test_a_service_budget_from_the_catalog(
    bot_settings: Settings, fake_slack: RunningFakeSlack, moto_aws: MotoServer, catalog: Catalog
) -> None:
    from decimal import Decimal

    from core.catalog import Budget
    from integrations.aws.cost_types import DateRange
    from integrations.sandbox.aws_seed import cost_and_usage_response, result_by_time

    with_service = catalog.model_copy(
        update={
            "budgets": [
                Budget(team="payments", monthly=Decimal(5000)),
                Budget(team="payments", service="checkout", monthly=Decimal(1000)),
            ]
        }
    )
    days = [DateRange(start=date(2026, 11, d), end=date(2026, 11, d + 1)) for d in range(1, 24)]
    checkout = cost_and_usage_response(
        [result_by_time(day, groups={"AWS Lambda": Decimal("40")}) for day in days],
        group_by="SERVICE",
    )
    # Asked in the list's order: the team's budget first, then the service's.
    seed_month(moto_aws, with_service, NOW.date(), teams=("payments",))
    # Then the list's untagged question (no answer of interest), then the check's one query
    # for every team.
    moto_aws.queue_cost_results([checkout, cost_and_usage_response([], group_by="team")])
    seed_check(moto_aws, with_service, NOW.date())

    async with cost_bot(bot_settings, with_service, fake_slack) as bot:
        listed = text_of(await bot.command(DEVELOPER, "/forge", "budget"))
        shown = text_of(await bot.command(DEVELOPER, "/cost", "service checkout"))
        assert await alerts_of(bot).check() == 2

    assert "*service checkout*: $920.00 of $1,000.00 (92% used)" in listed
    assert "forecast $1,200.00 (120%)" in listed
    assert "120% of the $1,000.00 budget (over budget)" in shown
    [team_alert, service_alert] = posts(fake_slack, "C0PAYMENTS")
    assert "team payments has spent" in team_alert.args["text"]
    assert service_alert.args["text"].startswith(
        ":rotating_light: service checkout has spent $920.00"
    )
    assert "80% of its $1,000.00 budget reached (92%)" in service_alert.args["text"]


def untagged_answer(october: tuple[str, str], november: tuple[str, str]) -> dict[str, object]:
    """The account-wide monthly answer grouped by the team tag: (untagged, payments) each
    month; `team$` is Cost Explorer's name for cost without the tag."""
    from decimal import Decimal

    from integrations.aws.cost_types import DateRange
    from integrations.sandbox.aws_seed import cost_and_usage_response, result_by_time

    months = (
        (DateRange(start=date(2026, 10, 1), end=date(2026, 11, 1)), october),
        (DateRange(start=date(2026, 11, 1), end=date(2026, 11, 25)), november),
    )
    return cost_and_usage_response(
        [
            result_by_time(
                period, groups={"team$": Decimal(untagged), "team$payments": Decimal(tagged)}
            )
            for period, (untagged, tagged) in months
        ],
        group_by="team",
    )


async def test_untagged_spend_is_shown_and_its_growth_told_to_the_platform_team(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    seed_month(moto_aws, catalog, NOW.date())
    # October: 100 of 1,000 untagged (10%); November so far: 300 of 1,200 (25%).
    moto_aws.queue_cost_results([untagged_answer(("100", "900"), ("300", "900"))])
    seed_check(moto_aws, catalog, NOW.date())  # the check's one query for the teams

    listed = text_of(await bot.command(DEVELOPER, "/forge", "budget"))
    assert (
        "*Untagged* (no `team` tag, in no team's figures): $300.00 of $1,200.00 spent "
        "Nov 1 – Nov 24 (25%; Oct 1 – Oct 31: 10%) :arrow_up_small: growing"
    ) in listed
    # One account-wide request: monthly, grouped by the team tag, from the first of last month.
    untagged_body = moto_aws.cost_explorer_request_bodies()[-1]
    assert untagged_body["Granularity"] == "MONTHLY" and "Filter" not in untagged_body
    assert untagged_body["GroupBy"] == [{"Type": "TAG", "Key": "team"}]
    assert untagged_body["TimePeriod"] == {"Start": "2026-10-01", "End": "2026-11-25"}

    # Next to a team's breakdown, from what is held (no request of its own).
    before = len(moto_aws.cost_explorer_request_bodies())
    shown = text_of(await bot.command(DEVELOPER, "/cost", "team payments"))
    assert "$300.00 of $1,200.00 spent Nov 1 – Nov 24 (25%" in shown
    assert len(moto_aws.cost_explorer_request_bodies()) == before

    # The daily check tells the platform team once; a second run says nothing more.
    await alerts_of(bot).check()
    [told] = posts(fake_slack, "C0PLATFORM")[-1:]
    assert told.args["text"] == (
        ":label: Untagged spend is growing: 25% of the account's spend Nov 1 – Nov 24 carries "
        "no `team` tag ($300.00), against 10% last month"
    )
    count = len(posts(fake_slack, "C0PLATFORM"))
    await alerts_of(bot).check()
    assert len(posts(fake_slack, "C0PLATFORM")) == count


async def test_alerts_sent_before_the_upgrade_are_not_sent_again(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    seed_check(moto_aws, catalog, NOW.date())
    assert bot.runtime.db is not None
    # Written by the previous release, whose keys did not name the budget's revision.
    legacy = cost_repo.BudgetAlert(
        alert_key="payments/team/payments|2026-11|actual|50",
        team="payments",
        budget="payments/team/payments",
        month="2026-11",
        kind="actual",
        threshold=50,
        amount="2600",
        state="sent",
        claimed_at=NOW - timedelta(days=2),
    )
    await bot.runtime.db.run(lambda s: cost_repo.claim_alert(s, legacy))

    # payments is at 59% of its catalog budget: its 50% was announced already.
    await alerts_of(bot).check()
    assert posts(fake_slack, "C0PAYMENTS") == []

    # A budget set after that alert is a new budget in force: 59% of 5,000 -> 50% again.
    await bot.command(PLATFORM, "/forge", "budget set payments 4999")
    await alerts_of(bot).check()
    [told] = posts(fake_slack, "C0PAYMENTS")
    assert "50% of its $4,999.00 budget reached" in told.args["text"]


async def test_the_check_asks_cost_explorer_once_for_every_team(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    # 200 teams asked one by one took 200 x Cost Explorer's latency (bench/scheduled_jobs.py).
    seed_check(moto_aws, catalog, NOW.date())
    before = len(moto_aws.cost_explorer_request_bodies())

    assert await alerts_of(bot).check() == 3

    daily = [
        b for b in moto_aws.cost_explorer_request_bodies()[before:] if b["Granularity"] == "DAILY"
    ]
    assert daily == [
        {
            "TimePeriod": {"Start": "2026-10-01", "End": "2026-11-25"},
            "Granularity": "DAILY",
            "Metrics": ["UnblendedCost"],
            "GroupBy": [{"Type": "TAG", "Key": "team"}, {"Type": "DIMENSION", "Key": "SERVICE"}],
        }
    ]
    # Each team's alert carries its own figures and its own top services.
    [payments] = posts(fake_slack, "C0PAYMENTS")
    assert payments.args["text"].startswith(":rotating_light: team payments has spent $2,964.35")
    assert "Top cost drivers" in str(payments.args["blocks"])


async def _open_preview(bot: CostBot, number: int, expires_in: timedelta) -> None:
    """A running preview of acme/checkout (team payments), as the previews capability leaves
    it: its pull request's row and its live environment (size S of web-preview)."""
    assert bot.runtime.db is not None
    now = bot.clock.now()

    def seed(session: Session) -> None:
        previews_repo.observe(
            session,
            previews_repo.Observed("github", "acme/checkout", number, True, "a" * 40, now),
            service="checkout",
            team="payments",
            namespace=f"pr-checkout-{number}",
            host="",
            now=now,
        )
        env_repo.insert(
            session,
            EnvironmentRecord(
                name=f"pr-checkout-{number}",
                live_name=f"pr-checkout-{number}",
                template="web-preview",
                size="S",
                team="payments",
                owner_user_id="forgebot",
                cluster="dev-cluster",
                state=EnvState.ACTIVE,
                ttl_seconds=int(expires_in.total_seconds()),
                expires_at=now + expires_in,
                requested_at=now,
                updated_at=now,
            ),
        )

    await bot.runtime.db.run(seed)


async def test_running_previews_count_in_the_forecast_from_the_environment_pricing(
    bot: CostBot, moto_aws: MotoServer, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    seed_month(moto_aws, catalog, NOW.date())
    # Size S of web-preview: 2 vCPU x $0.0316 + 4 GiB x $0.0042 = $0.08 an hour, awake 55 of
    # the week's 168 hours (Mon-Fri 08:00-19:00). Until it expires in 2 days: $1.26. Another
    # one expiring in 30 days counts only to the month's end (158 h): $4.14; $5.40 together.
    await _open_preview(bot, 7, timedelta(days=2))
    await _open_preview(bot, 8, timedelta(days=30))
    shown = text_of(await bot.command(DEVELOPER, "/forge", "budget"))
    assert "forecast $3,879.60 (78%)" in shown, shown  # $3,874.20 + $5.40
    assert "includes ≈ $5.40 for 2 running pull request previews" in shown
    assert "*team search*: $1,499.85 of $2,000.00 (75% used)" in shown
    assert "running pull request" not in shown.split("*team search*")[1], "payments' only"

    # The forecast alert says so too (the check asks one query for every team).
    seed_check(moto_aws, catalog, NOW.date())
    await bot.command(PLATFORM, "/forge", "budget set payments 6000")
    assert bot.runtime.ctx is not None
    await _forecast_only_alerts(bot, catalog).check()
    latest = posts(fake_slack, "C0PAYMENTS")[-1]
    assert latest.args["text"].startswith(
        ":crystal_ball: team payments is forecast to spend $3,879.60 in November"
    )
    assert "The forecast includes ≈ $5.40 for 2 running pull request previews" in str(
        latest.args["blocks"]
    )
