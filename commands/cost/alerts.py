"""The daily budget check: post to a team's channel when its actual or forecast spend crosses
a threshold of its monthly budget, once per budget in force, month and threshold.

"The budget in force" is its revision (amount, and when it was set in Slack): raising a
budget mid-month re-arms its thresholds, so 53% of a budget raised from 1,000 to 3,000 is
announced once as "50% reached" although 50% of the old 1,000 was announced before.
Comparisons are exact (`Decimal`): spend equal to a threshold has reached it.

Each crossing is claimed in `budget_alerts` under a unique key before anything is posted, so
a restart, a catch-up run or a second replica never repeats one; a claim whose message could
not be posted is released, so the next run tries again. When spend jumps over several
thresholds at once, all are claimed and one message names the highest.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from functools import partial
from typing import Protocol
from zoneinfo import ZoneInfo

from commands.cost import chart, views
from commands.cost.periods import Period
from commands.cost.service import BudgetLine, CostService, CostSummary
from commands.cost.untagged import UntaggedCost
from core.catalog import Catalog
from core.clock import Clock
from core.errors import ForgebotError
from storage import cost as repo
from storage import idempotency
from storage.db import Database
from storage.models import IdempotencyKey

log = logging.getLogger(__name__)

ACTUAL, FORECAST, UNTAGGED = "actual", "forecast", "untagged"
UNTAGGED_KEY = "untagged"


class AlertChannel(Protocol):
    async def post(
        self, channel: str, text: str, blocks: list[dict[str, object]] | None = None
    ) -> str: ...

    async def upload_file(
        self,
        channel: str,
        filename: str,
        content: bytes | str,
        title: str,
        initial_comment: str = "",
    ) -> str: ...


@dataclass(frozen=True)
class Crossing:
    kind: str
    threshold: int


def parse_time(text: str) -> time:
    hours, _, minutes = text.partition(":")
    return time(int(hours), int(minutes or 0))


def crossings(
    summary: CostSummary, budget: BudgetLine, actual: list[int], forecast: list[int]
) -> list[Crossing]:
    """Every threshold the month's spend has reached, actual and forecast."""
    found = [
        Crossing(ACTUAL, t)
        for t in sorted(actual)
        if summary.month_to_date >= budget.monthly * Decimal(t) / 100
    ]
    if summary.forecast is not None:
        found += [
            Crossing(FORECAST, t)
            for t in sorted(forecast)
            if summary.forecast.amount >= budget.monthly * Decimal(t) / 100
        ]
    return found


def alert_key(budget: BudgetLine, month: str, crossing: Crossing) -> str:
    return f"{budget.key}|{month}|{crossing.kind}|{crossing.threshold}|{budget.revision}"


class BudgetAlerts:
    def __init__(
        self,
        *,
        service: CostService,
        catalog: Catalog,
        db: Database,
        clock: Clock,
        channel: AlertChannel,
        untagged: UntaggedCost | None = None,
    ) -> None:
        self.service = service
        self.catalog = catalog
        self.db = db
        self.clock = clock
        self.channel = channel
        self.untagged = untagged
        self.failed: list[str] = []

    async def scheduled(self, slot: datetime) -> None:
        """The scheduler's body: the first run at or after the alert time each local day."""
        schedules = self.catalog.schedules
        zone = ZoneInfo(schedules.timezone)
        local = self.clock.now().astimezone(zone)
        if local.time() < parse_time(schedules.budget_alert_time):
            return
        day_key = f"budget-alerts:{local.date().isoformat()}"
        done = await self.db.run(lambda s: s.get(IdempotencyKey, day_key) is not None)
        if done:
            return
        await self.check()
        if self.failed:
            return  # the next run (minutes later) tries the budgets that failed again
        now = self.clock.now()
        await self.db.run(lambda s: idempotency.claim(s, day_key, now))

    async def check(self) -> int:
        """Evaluate every budget now; returns how many alerts were posted. Budgets that could
        not be checked or announced are left in `failed`."""
        posted = 0
        self.failed = []
        for budget in await self.service.budgets():
            try:
                posted += await self._check_one(budget)
            except ForgebotError as exc:
                self.failed.append(budget.key)
                log.warning("budget check for %s failed: %s", budget.key, exc)
            except Exception:
                self.failed.append(budget.key)
                log.exception("budget alert for %s could not be posted", budget.key)
        if self.untagged is not None:
            try:
                posted += await self._check_untagged(self.untagged)
            except ForgebotError as exc:
                # Not retried within the day: each retry would be another billed query.
                log.warning("untagged spend check failed: %s", exc)
            except Exception:
                self.failed.append(UNTAGGED_KEY)
                log.exception("untagged spend alert could not be posted")
        return posted

    async def _check_untagged(self, source: UntaggedCost) -> int:
        """Tell the platform team when the untagged share of the month's spend is above last
        month's: once per month and whole percent it reaches, so a share that keeps growing
        is told again, a steady one is not."""
        spend = await source.refresh(self.service.today())
        share = spend.this_month.share
        platform = self.catalog.team(self.catalog.platform_team)
        if not spend.grew or share is None or platform is None or spend.stale:
            return 0
        level = int(share * 100)
        month = spend.this_month.month.start.strftime("%Y-%m")
        key = f"{UNTAGGED_KEY}|{month}|{level}"
        record = repo.BudgetAlert(
            alert_key=key,
            team=platform.name,
            budget=UNTAGGED_KEY,
            month=month,
            kind=UNTAGGED,
            threshold=level,
            amount=str(spend.this_month.untagged),
            claimed_at=self.clock.now(),
        )
        if not await self.db.run(partial(repo.claim_alert, alert=record)):
            return 0
        text, blocks = views.untagged_alert(spend, self.clock.now())
        try:
            ts = await self.channel.post(platform.channel, text, blocks)
        except Exception:
            await self.db.run(partial(repo.release_alert, alert_key=key))
            raise
        await self.db.run(
            partial(
                repo.mark_alert_sent,
                alert_key=key,
                channel=platform.channel,
                ts=ts,
                now=self.clock.now(),
            )
        )
        return 1

    async def _check_one(self, budget: BudgetLine) -> int:
        team = self.catalog.team(budget.team)
        if team is None:
            return 0
        summary = await self.service.summary(budget.scope, Period.THIS_MONTH)
        schedules = self.catalog.schedules
        found = crossings(
            summary, budget, schedules.budget_thresholds, schedules.budget_forecast_thresholds
        )
        if not found:
            return 0
        month = summary.window.month.start.strftime("%Y-%m")
        now = self.clock.now()
        legacy = await self.db.run(partial(repo.legacy_alerts, budget=budget.key, month=month))
        claimed: list[tuple[str, Crossing]] = []
        for crossing in found:
            sent_before = legacy.get((crossing.kind, crossing.threshold))
            if sent_before is not None and (budget.set_at is None or sent_before >= budget.set_at):
                continue  # announced before keys named the budget's revision, under this budget
            key = alert_key(budget, month, crossing)
            amount = (
                summary.forecast.amount
                if crossing.kind == FORECAST and summary.forecast is not None
                else summary.month_to_date
            )
            record = repo.BudgetAlert(
                alert_key=key,
                team=budget.team,
                budget=budget.key,
                month=month,
                kind=crossing.kind,
                threshold=crossing.threshold,
                amount=str(amount),
                claimed_at=now,
            )
            if await self.db.run(partial(repo.claim_alert, alert=record)):
                claimed.append((key, crossing))
        if not claimed:
            return 0
        # Actual spend is news before a forecast; the highest threshold says the most.
        _, headline = max(claimed, key=lambda kc: (kc[1].kind == ACTUAL, kc[1].threshold))
        text, blocks = views.budget_alert(
            budget, summary, headline.kind, headline.threshold, now.date()
        )
        try:
            ts = await self.channel.post(team.channel, text, blocks)
        except Exception:
            for key, _ in claimed:
                await self.db.run(partial(repo.release_alert, alert_key=key))
            raise
        sent_at = self.clock.now()
        for key, _ in claimed:
            await self.db.run(
                partial(
                    repo.mark_alert_sent, alert_key=key, channel=team.channel, ts=ts, now=sent_at
                )
            )
        await self._chart(team.channel, budget, summary)
        return 1

    async def _chart(self, channel: str, budget: BudgetLine, summary: CostSummary) -> None:
        # The alert stands without its chart; a failed upload is logged, not retried.
        try:
            png = await asyncio.to_thread(
                chart.render_png,
                f"{budget.scope.describe()}: {summary.window.month.start:%B %Y}",
                summary.month_daily,
                currency=summary.currency,
                budget=budget.monthly,
            )
            await self.channel.upload_file(
                channel,
                f"budget-{budget.scope.name}.png",
                png,
                f"Daily cost of {budget.scope.describe()}",
            )
        except Exception:
            log.warning("could not upload the budget chart for %s", budget.key, exc_info=True)
