"""The cost rules: what a scope's cost is over a period, how it compares, where the month is
heading against its budget, and which budgets apply.

**The call budget** (each Cost Explorer request is billed USD 0.01), within the cache TTL
(`FORGEBOT_COST_CACHE_TTL`, 6 h) and across every replica:

- one GetCostAndUsage per scope and period asked about (plus its pages, if any): a single
  daily, by-service report over the period, the period before it, the month to date and the
  forecast basis answers every figure shown;
- with `forecast_mode="cost-explorer"` (the production default), one GetCostForecast per
  scope and month. When Cost Explorer cannot forecast, the linear projection of the report
  already held stands in (no other query), and the failure is remembered so it is not paid
  for again: per scope for the TTL when the scope has too little history, for every scope
  for the TTL when the role may not forecast, and for every scope for `FORECAST_RETRY_AFTER`
  when the endpoint fails or throttles.

So N scopes asked about cost at most 2N requests per TTL (N + 1 where Cost Explorer cannot
forecast). When a refresh fails for a passing reason (throttling, an unreachable endpoint),
the last known report stands in, with its age and the reason.

Figures are the catalog's `cost.metric` (unblended by default), in UTC days.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from commands.cost.cache import Cached, Codec, CostCache
from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import FORECAST_BASIS_DAYS, Period, Window, day_range, window
from core.catalog import Catalog
from core.clock import Clock
from core.errors import ForgebotError, NotFound, UserInputError
from integrations.aws.cost_explorer import CostSource
from integrations.aws.cost_types import (
    SERVICE,
    CostMetric,
    CostQuery,
    CostReport,
    DateRange,
    Forecast,
    Granularity,
    TagFilter,
)
from integrations.aws.cost_wire import cost_and_usage_request
from integrations.aws.errors import (
    AwsAccessDenied,
    AwsCredentialsMissing,
    AwsThrottled,
    AwsUnavailable,
    CostDataUnavailable,
)
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
"""After a passing failure (5xx, throttling, unreachable), no scope asks for a forecast for
this long."""
PASSING_FAILURES: tuple[type[Exception], ...] = (AwsThrottled, AwsUnavailable)
"""Refresh failures for which the last known answer stands in."""
FORECAST_UNAVAILABLE_EVERYWHERE = "ce:forecast-unavailable"
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
    set_at: datetime | None = None

    @property
    def key(self) -> str:
        return f"{self.team}/{self.scope.kind.value}/{self.scope.name}"

    @property
    def revision(self) -> str:
        """Which budget is in force: its amount, and when it was set in Slack. Alerts are
        once per threshold of a revision, so any change of the budget re-arms them."""
        amount = format(self.monthly.normalize(), "f")
        return f"{amount}@{self.set_at.isoformat()}" if self.set_at else amount


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
    compared_total: Decimal
    """The cost of `window.compared` (the complete days compared)."""
    previous_total: Decimal
    """The cost of `window.previous` (what they are compared with)."""
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
    metric: CostMetric = CostMetric.UNBLENDED
    stale: str | None = None
    """Why these figures are older than the cache TTL (the refresh failed), or None."""

    @property
    def period(self) -> Period:
        return self.window.period

    @property
    def top_services(self) -> tuple[tuple[str, Decimal], ...]:
        return self.services[:TOP_SERVICES]

    @property
    def prorated(self) -> bool:
        """Whether the two sides have different numbers of days (daily averages compared)."""
        compared = self.window.compared
        return compared is not None and compared.days != self.window.previous.days

    @property
    def change(self) -> Decimal | None:
        """Relative change of the complete days compared against the days before: of their
        totals, or of their daily averages when the day counts differ. None when there is
        nothing to compare (no complete day yet, or no cost before)."""
        compared, previous = self.window.compared, self.window.previous
        if compared is None or self.previous_total == 0:
            return None
        if not self.prorated:
            return (self.compared_total - self.previous_total) / self.previous_total
        now = self.compared_total / compared.days
        before = self.previous_total / previous.days
        return (now - before) / before

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


def cost_metric(catalog: Catalog) -> CostMetric:
    return CostMetric(catalog.cost.metric)


def cost_query(scope: Scope, period: Period, today: date, catalog: Catalog) -> CostQuery:
    """The one Cost Explorer query behind `/forge cost` for this scope and period (the demo
    and the tests seed answers for exactly these)."""
    return CostQuery(
        period=window(period, today).fetch,
        granularity=Granularity.DAILY,
        filter_tag=tag_filter(scope, catalog),
        group_by=SERVICE,
        metric=cost_metric(catalog),
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
        self._forecast_probe = asyncio.Lock()
        self._forecast_worked_at: datetime | None = None

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
        report = await self._report(query)
        ce_forecast: Forecast | str | None = None
        if self.forecast_mode == "cost-explorer":
            ce_forecast = await self._cost_explorer_forecast(scope, _rest_of_month(today))
        budget = await self.budget_for(scope)
        return summarize(scope, period, today, report, budget, ce_forecast)

    def summary_from_memory(self, scope: Scope, period: Period) -> CostSummary | None:
        """The summary if everything it needs is in this process's memory (no I/O at all,
        so it can be the ack itself); None otherwise."""
        today = self.today()
        report = self.cache.peek(cache_key(cost_query(scope, period, today, self.catalog)))
        budgets = self._budgets_in_memory()
        if report is None or budgets is None:
            return None
        ce_forecast: Forecast | str | None = None
        if self.forecast_mode == "cost-explorer":
            key = self._forecast_key(tag_filter(scope, self.catalog), _rest_of_month(today))
            remembered = self.cache.peek(key)
            unavailable = self.cache.noted_in_memory(
                FORECAST_UNAVAILABLE_EVERYWHERE
            ) or self.cache.noted_in_memory(key + ":unavailable")
            if remembered is not None:
                ce_forecast = remembered.value
            elif unavailable is not None:
                ce_forecast = unavailable
            else:
                return None
        budget = next((b for b in budgets if b.scope == scope), None)
        return summarize(scope, period, today, report, budget, ce_forecast)

    async def _report(self, query: CostQuery) -> Cached[CostReport]:
        async def fetch() -> CostReport:
            try:
                return await self.source.cost_and_usage(
                    query.period,
                    query.granularity,
                    filter_tag=query.filter_tag,
                    group_by=query.group_by,
                    metric=query.metric,
                )
            except AwsCredentialsMissing:
                raise CostNotConfigured(
                    "Cost Explorer is not set up for forgebot: it has no AWS credentials. "
                    "The platform team can give it a role with ce:GetCostAndUsage."
                ) from None

        return await self.cache.get(
            cache_key(query), fetch, REPORT_CODEC, stale_on=PASSING_FAILURES
        )

    def _forecast_key(self, tag: TagFilter, remaining: DateRange) -> str:
        metric = cost_metric(self.catalog)
        suffix = "" if metric is CostMetric.UNBLENDED else f":{metric.value}"
        return f"ce:forecast:{tag.key}={tag.value}:{remaining.start}:{remaining.end}{suffix}"

    async def _cost_explorer_forecast(self, scope: Scope, remaining: DateRange) -> Forecast | str:
        """Cost Explorer's forecast of the rest of the month, or why there is none (then the
        linear projection stands in). A failure is remembered (see the module's call budget),
        so it costs one request per scope, or one for all scopes, per TTL. Until a forecast
        has come back in this process, forecasts are asked one at a time: ten people asking
        at once of an endpoint that cannot forecast cost one failed request, not ten."""
        tag = tag_filter(scope, self.catalog)
        key = self._forecast_key(tag, remaining)
        if self._forecast_known_to_work():
            return await self._ask_forecast(scope, tag, key, remaining)
        async with self._forecast_probe:
            return await self._ask_forecast(scope, tag, key, remaining)

    def _forecast_known_to_work(self) -> bool:
        return (
            self._forecast_worked_at is not None
            and self.clock.now() - self._forecast_worked_at < self.cache.ttl
        )

    async def _ask_forecast(
        self, scope: Scope, tag: TagFilter, key: str, remaining: DateRange
    ) -> Forecast | str:
        for note in (FORECAST_UNAVAILABLE_EVERYWHERE, key + ":unavailable"):
            reason = await self.cache.noted(note)
            if reason is not None:
                return reason

        async def fetch() -> Forecast:
            return await self.source.forecast(
                remaining, filter_tag=tag, metric=cost_metric(self.catalog)
            )

        try:
            cached = await self.cache.get(key, fetch, FORECAST_CODEC)
        except CostDataUnavailable:
            reason = "it has too little cost history for this scope"
            await self.cache.note(key + ":unavailable", reason, self.cache.ttl)
        except AwsAccessDenied:
            reason = "the bot's role may not call ce:GetCostForecast"
            await self.cache.note(FORECAST_UNAVAILABLE_EVERYWHERE, reason, self.cache.ttl)
        except AwsUnavailable as exc:
            status = getattr(exc, "status", None)
            reason = f"HTTP {status} from GetCostForecast" if status else str(exc)
            await self.cache.note(FORECAST_UNAVAILABLE_EVERYWHERE, reason, FORECAST_RETRY_AFTER)
        except AwsThrottled:
            reason = "Cost Explorer is throttling"
            await self.cache.note(FORECAST_UNAVAILABLE_EVERYWHERE, reason, FORECAST_RETRY_AFTER)
        except ForgebotError as exc:
            reason = str(exc)
            await self.cache.note(key + ":unavailable", reason, FORECAST_RETRY_AFTER)
        else:
            self._forecast_worked_at = self.clock.now()
            return cached.value
        log.info("no Cost Explorer forecast for %s: %s", scope.describe(), reason)
        return reason

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
                override.team,
                scope,
                Decimal(override.monthly),
                "slack",
                override.set_by,
                override.set_at,
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


def summarize(
    scope: Scope,
    period: Period,
    today: date,
    cached: Cached[CostReport],
    budget: BudgetLine | None,
    ce_forecast: Forecast | str | None,
) -> CostSummary:
    report = cached.value
    win = window(period, today)
    daily = _daily(report)
    current = _days(daily, win.current)
    month = _days(daily, DateRange(start=win.month.start, end=today + timedelta(days=1)))
    return CostSummary(
        scope=scope,
        window=win,
        currency=report.currency,
        total=_sum(current),
        compared_total=_sum(_days(daily, win.compared)) if win.compared else Decimal(0),
        previous_total=_sum(_days(daily, win.previous)),
        services=tuple(_by_service(report, win.current)),
        daily=tuple(current),
        month_daily=tuple(month),
        month_to_date=_sum(month),
        forecast=_month_forecast(win, daily, today, ce_forecast),
        budget=budget,
        fetched_at=cached.fetched_at,
        from_cache=cached.hit,
        estimated=report.estimated,
        metric=report.query.metric,
        stale=cached.stale,
    )


def _month_forecast(
    win: Window, daily: dict[date, Decimal], today: date, ce_forecast: Forecast | str | None
) -> MonthForecast | None:
    """The month's expected total: the actual days before today plus a forecast of the rest
    (Cost Explorer's when given, else a linear projection of the recent daily average; a
    string says why Cost Explorer's is missing)."""
    so_far = (
        _sum(_days(daily, DateRange(start=win.month.start, end=today)))
        if today > win.month.start
        else Decimal(0)
    )
    if isinstance(ce_forecast, Forecast):
        return MonthForecast(
            win.month,
            (so_far + ce_forecast.amount).quantize(CENT, rounding=ROUND_HALF_UP),
            ce_forecast.explanation(),
        )
    remaining = _rest_of_month(today)
    basis = DateRange(start=today - timedelta(days=FORECAST_BASIS_DAYS), end=today)
    basis_days = _days(daily, basis)
    if not any(d.amount for d in basis_days):
        return None
    average = _sum(basis_days) / len(basis_days)
    amount = so_far + average * remaining.days
    explanation = (
        f"linear projection of the average daily cost over the last {len(basis_days)} days "
        f"({day_range(basis)})"
    )
    if isinstance(ce_forecast, str):
        explanation += f"; Cost Explorer's forecast is unavailable ({ce_forecast})"
    return MonthForecast(win.month, amount.quantize(CENT, rounding=ROUND_HALF_UP), explanation)


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
