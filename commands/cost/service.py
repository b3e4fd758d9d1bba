"""The cost rules: what a scope's cost is over a period, how it compares, where the month is
heading against its budget, and which budgets apply.

One `/forge cost` costs at most one Cost Explorer request per scope and period within the
cache TTL: a single daily, by-service report over the period, the period before it, the
month to date and the forecast basis answers every figure shown. The month's forecast is
Cost Explorer's own with `forecast_mode="cost-explorer"` (the production default: one more
request per scope and month, cached too), or a linear projection of that report (no extra
request; also the stand-in whenever Cost Explorer cannot forecast).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from bot.catalog import Catalog
from bot.clock import Clock
from bot.errors import ForgebotError, NotFound, UserInputError
from commands.cost.cache import Codec, CostCache
from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import FORECAST_BASIS_DAYS, Period, Window, window
from integrations.aws.cost_explorer import CostSource
from integrations.aws.cost_types import (
    SERVICE,
    CostQuery,
    CostReport,
    DateRange,
    Forecast,
    Granularity,
    TagFilter,
)
from integrations.aws.cost_wire import cost_and_usage_request
from integrations.aws.errors import AwsCredentialsMissing
from integrations.aws.resource_types import ENVIRONMENT_TAG
from storage import cost as repo
from storage.db import Database

log = logging.getLogger(__name__)

TEAM_TAG = "team"
SERVICE_TAG = "service"
TOP_SERVICES = 5
CENT = Decimal("0.01")
ForecastMode = Literal["linear", "cost-explorer"]
FORECAST_RETRY_AFTER = timedelta(minutes=15)
BUDGETS_REFRESH = timedelta(minutes=1)
"""How long a replica trusts its copy of the budgets: one set on another replica shows here
within this time (on the replica that set it, at once)."""
REPORT_CODEC = Codec(CostReport.model_dump_json, CostReport.model_validate_json)
FORECAST_CODEC = Codec(Forecast.model_dump_json, Forecast.model_validate_json)


@dataclass(frozen=True)
class BudgetLine:
    team: str
    scope: Scope
    monthly: Decimal
    source: Literal["catalog", "slack"]
    set_by: str = ""

    @property
    def key(self) -> str:
        return f"{self.team}/{self.scope.kind.value}/{self.scope.name}"


@dataclass(frozen=True)
class MonthForecast:
    month: DateRange
    amount: Decimal
    """The whole month's expected cost: actual days so far plus the forecast of the rest."""
    explanation: str


@dataclass(frozen=True)
class DailyCost:
    day: date
    amount: Decimal


@dataclass(frozen=True)
class CostSummary:
    scope: Scope
    window: Window
    currency: str
    total: Decimal
    previous_total: Decimal
    services: tuple[tuple[str, Decimal], ...]
    """Every service of the period, largest first."""
    daily: tuple[DailyCost, ...]
    """Each day of the period (zero where nothing was recorded)."""
    month_daily: tuple[DailyCost, ...]
    month_to_date: Decimal
    forecast: MonthForecast | None
    budget: BudgetLine | None
    fetched_at: datetime
    from_cache: bool
    estimated: bool

    @property
    def period(self) -> Period:
        return self.window.period

    @property
    def top_services(self) -> tuple[tuple[str, Decimal], ...]:
        return self.services[:TOP_SERVICES]

    @property
    def change(self) -> Decimal | None:
        """Relative change against the previous period (None when that had no cost)."""
        if self.previous_total == 0:
            return None
        return (self.total - self.previous_total) / self.previous_total

    @property
    def empty(self) -> bool:
        return self.total == 0 and self.previous_total == 0 and self.month_to_date == 0

    def used(self, amount: Decimal) -> Decimal | None:
        if self.budget is None:
            return None
        return amount / self.budget.monthly


class CostNotConfigured(ForgebotError):
    pass


def tag_filter(scope: Scope, catalog: Catalog) -> TagFilter:
    if scope.kind is ScopeKind.TEAM:
        team = catalog.team(scope.name)
        return TagFilter(TEAM_TAG, (team.cost_tag if team else None) or scope.name)
    if scope.kind is ScopeKind.SERVICE:
        return TagFilter(SERVICE_TAG, scope.name)
    return TagFilter(ENVIRONMENT_TAG, scope.name)


def cost_query(scope: Scope, period: Period, today: date, catalog: Catalog) -> CostQuery:
    """The one Cost Explorer query behind `/forge cost` for this scope and period (the demo
    and the tests seed answers for exactly these)."""
    return CostQuery(
        period=window(period, today).fetch,
        granularity=Granularity.DAILY,
        filter_tag=tag_filter(scope, catalog),
        group_by=SERVICE,
    )


def cache_key(query: CostQuery) -> str:
    return "ce:usage:" + json.dumps(cost_and_usage_request(query), sort_keys=True)


class CostService:
    def __init__(
        self,
        *,
        catalog: Catalog,
        db: Database,
        clock: Clock,
        source: CostSource,
        cache: CostCache,
        forecast_mode: ForecastMode = "linear",
    ) -> None:
        self.catalog = catalog
        self.db = db
        self.clock = clock
        self.source = source
        self.cache = cache
        self.forecast_mode = forecast_mode
        self._budgets: tuple[datetime, list[BudgetLine]] | None = None
        self._forecast_failures: dict[str, datetime] = {}

    def today(self) -> date:
        return self.clock.now().date()  # Cost Explorer's days are UTC days

    # --- scopes -------------------------------------------------------------------------------

    def default_scope(self, teams: Sequence[str]) -> Scope:
        if not teams:
            raise UserInputError(
                "You are not in a team of the catalog, so name what to show: "
                "`/forge cost team NAME`, `service NAME` or `env NAME`."
            )
        return Scope(ScopeKind.TEAM, teams[0])

    # --- reports ------------------------------------------------------------------------------

    async def summary(self, scope: Scope, period: Period) -> CostSummary:
        today = self.today()
        query = cost_query(scope, period, today, self.catalog)
        report, fetched_at, hit = await self._report(query)
        ce_forecast = None
        if self.forecast_mode == "cost-explorer":
            ce_forecast = await self._cost_explorer_forecast(scope, _rest_of_month(today))
        budget = await self.budget_for(scope)
        return _summarize(scope, period, today, report, fetched_at, hit, budget, ce_forecast)

    def summary_from_memory(self, scope: Scope, period: Period) -> CostSummary | None:
        """The summary if everything it needs is in this process's memory (no I/O at all,
        so it can be the ack itself); None otherwise."""
        today = self.today()
        report = self.cache.peek(cache_key(cost_query(scope, period, today, self.catalog)))
        budgets = self._budgets_in_memory()
        if report is None or budgets is None:
            return None
        ce_forecast = None
        if self.forecast_mode == "cost-explorer":
            key = _forecast_key(tag_filter(scope, self.catalog), _rest_of_month(today))
            remembered = self.cache.peek(key)
            if remembered is not None:
                ce_forecast = remembered.value
            elif not self._forecast_recently_failed(key):
                return None
        budget = next((b for b in budgets if b.scope == scope), None)
        return _summarize(
            scope, period, today, report.value, report.fetched_at, True, budget, ce_forecast
        )

    async def _report(self, query: CostQuery) -> tuple[CostReport, datetime, bool]:
        async def fetch() -> CostReport:
            try:
                return await self.source.cost_and_usage(
                    query.period,
                    query.granularity,
                    filter_tag=query.filter_tag,
                    group_by=query.group_by,
                )
            except AwsCredentialsMissing:
                raise CostNotConfigured(
                    "Cost Explorer is not set up for forgebot: it has no AWS credentials. "
                    "The platform team can give it a role with ce:GetCostAndUsage."
                ) from None

        cached = await self.cache.get(cache_key(query), fetch, REPORT_CODEC)
        return cached.value, cached.fetched_at, cached.hit

    async def _cost_explorer_forecast(self, scope: Scope, remaining: DateRange) -> Forecast | None:
        tag = tag_filter(scope, self.catalog)
        key = _forecast_key(tag, remaining)
        if self._forecast_recently_failed(key):
            return None

        async def fetch() -> Forecast:
            return await self.source.forecast(remaining, filter_tag=tag)

        try:
            cached = await self.cache.get(key, fetch, FORECAST_CODEC)
        except ForgebotError as exc:
            # The linear projection stands in; not asking again at once keeps a role without
            # ce:GetCostForecast (or a throttled account) from paying for every command.
            log.info("no Cost Explorer forecast for %s: %s", scope.describe(), exc)
            self._forecast_failures[key] = self.clock.now()
            return None
        return cached.value

    def _forecast_recently_failed(self, key: str) -> bool:
        failed_at = self._forecast_failures.get(key)
        return failed_at is not None and self.clock.now() - failed_at < FORECAST_RETRY_AFTER

    # --- budgets ------------------------------------------------------------------------------

    def _budgets_in_memory(self) -> list[BudgetLine] | None:
        if self._budgets is None or self.clock.now() - self._budgets[0] > BUDGETS_REFRESH:
            return None
        return self._budgets[1]

    async def budgets(self) -> list[BudgetLine]:
        """Every budget: the catalog's, each replaced by one set in Slack if there is one."""
        lines: dict[tuple[str, str, str], BudgetLine] = {}
        for budget in self.catalog.budgets:
            scope = _budget_scope(budget.team, budget.service, budget.environment)
            lines[(budget.team, budget.service or "", budget.environment or "")] = BudgetLine(
                budget.team, scope, budget.monthly, "catalog"
            )
        for override in await self.db.run(repo.overrides):
            scope = _budget_scope(override.team, override.service, override.environment)
            lines[(override.team, override.service, override.environment)] = BudgetLine(
                override.team, scope, Decimal(override.monthly), "slack", override.set_by
            )
        result = sorted(
            lines.values(), key=lambda b: (b.team, b.scope.kind != ScopeKind.TEAM, b.key)
        )
        self._budgets = (self.clock.now(), result)
        return result

    async def budget_for(self, scope: Scope) -> BudgetLine | None:
        budgets = self._budgets_in_memory()
        if budgets is None:
            budgets = await self.budgets()
        return next((b for b in budgets if b.scope == scope), None)

    async def set_budget(self, team: str, amount: Decimal, actor: str) -> Decimal | None:
        """Set a team's monthly budget (platform only: the handler authorizes). Returns the
        budget it replaces."""
        if self.catalog.team(team) is None:
            raise NotFound(f"There is no team called `{team}`.")
        before = await self.budget_for(Scope(ScopeKind.TEAM, team))
        now = self.clock.now()
        await self.db.run(lambda s: repo.set_override(s, team, amount, actor, now))
        self._budgets = None
        return before.monthly if before else None


def _rest_of_month(today: date) -> DateRange:
    return DateRange(start=today, end=DateRange.month_of(today).end)


def _forecast_key(tag: TagFilter, remaining: DateRange) -> str:
    return f"ce:forecast:{tag.key}={tag.value}:{remaining.start}:{remaining.end}"


def _summarize(
    scope: Scope,
    period: Period,
    today: date,
    report: CostReport,
    fetched_at: datetime,
    hit: bool,
    budget: BudgetLine | None,
    ce_forecast: Forecast | None,
) -> CostSummary:
    win = window(period, today)
    daily = _daily(report)
    current = _days(daily, win.current)
    month = _days(daily, DateRange(start=win.month.start, end=today + timedelta(days=1)))
    return CostSummary(
        scope=scope,
        window=win,
        currency=report.currency,
        total=_sum(current),
        previous_total=_sum(_days(daily, win.previous)),
        services=tuple(_by_service(report, win.current)),
        daily=tuple(current),
        month_daily=tuple(month),
        month_to_date=_sum(month),
        forecast=_month_forecast(win, daily, today, ce_forecast),
        budget=budget,
        fetched_at=fetched_at,
        from_cache=hit,
        estimated=report.estimated,
    )


def _month_forecast(
    win: Window, daily: dict[date, Decimal], today: date, ce_forecast: Forecast | None
) -> MonthForecast | None:
    """The month's expected total: the actual days before today plus a forecast of the rest
    (Cost Explorer's when given, else a linear projection of the recent daily average)."""
    so_far = (
        _sum(_days(daily, DateRange(start=win.month.start, end=today)))
        if today > win.month.start
        else Decimal(0)
    )
    if ce_forecast is not None:
        return MonthForecast(
            win.month, (so_far + ce_forecast.amount).quantize(CENT), ce_forecast.explanation()
        )
    remaining = _rest_of_month(today)
    basis = DateRange(start=today - timedelta(days=FORECAST_BASIS_DAYS), end=today)
    basis_days = _days(daily, basis)
    if not any(d.amount for d in basis_days):
        return None
    average = _sum(basis_days) / len(basis_days)
    amount = so_far + average * remaining.days
    return MonthForecast(
        win.month,
        amount.quantize(CENT, rounding=ROUND_HALF_UP),
        f"linear projection of the average daily cost over the last {len(basis_days)} days",
    )


def _budget_scope(team: str, service: str | None, environment: str | None) -> Scope:
    if service:
        return Scope(ScopeKind.SERVICE, service)
    if environment:
        return Scope(ScopeKind.ENVIRONMENT, environment)
    return Scope(ScopeKind.TEAM, team)


def _daily(report: CostReport) -> dict[date, Decimal]:
    days: dict[date, Decimal] = defaultdict(Decimal)
    for bucket in report.buckets:
        days[bucket.period.start] += bucket.total
    return days


def _by_service(report: CostReport, period: DateRange) -> list[tuple[str, Decimal]]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for bucket in report.buckets:
        if period.start <= bucket.period.start < period.end:
            for group in bucket.groups:
                sums[group.key or "(no service)"] += group.amount
    return sorted(((k, v) for k, v in sums.items() if v != 0), key=lambda kv: (-kv[1], kv[0]))


def _days(daily: dict[date, Decimal], period: DateRange) -> list[DailyCost]:
    return [
        DailyCost(
            period.start + timedelta(days=i),
            daily.get(period.start + timedelta(days=i), Decimal(0)),
        )
        for i in range(period.days)
    ]


def _sum(days: Sequence[DailyCost]) -> Decimal:
    return sum((d.amount for d in days), Decimal(0))
