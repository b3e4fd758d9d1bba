"""Error-budget arithmetic: SLI, budget left, burn rates, alert conditions and status. Pure.

Burn rate over a window is the window's error ratio divided by the ratio the objective allows
(1x spends the budget exactly over the SLO window). Budget remaining is
1 - bad / (allowed share x total) over the SLO window; negative means overspent. In minutes it
is what is left expressed as minutes of full outage: remaining x window x allowed share.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from bot.catalog import BurnCondition, SloAlerting
from bot.durations import format_duration
from commands.slo.queries import Counts, SloRef

REPORT_WINDOWS = (
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(hours=24),
    timedelta(days=3),
)
WARNING_BELOW = 0.25
"""Budget share left under which an SLO is `warning` even without a burn alert."""


class Status(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    ERROR = "query error"
    NO_DATA = "no data"
    OK = "ok"


class Severity(StrEnum):
    PAGE = "page"
    TICKET = "ticket"


SEVERITY_RANK = {Severity.PAGE: 2, Severity.TICKET: 1}
STATUS_RANK = {s: i for i, s in enumerate(Status)}


@dataclass(frozen=True)
class Alert:
    severity: Severity
    condition: BurnCondition

    def describe(self) -> str:
        c = self.condition
        return (
            f"burn rate over {c.burn:g}x for {format_duration(c.long)} "
            f"and {format_duration(c.short)}"
        )


@dataclass(frozen=True)
class SloFigures:
    ref: SloRef
    status: Status
    sli: float | None
    """Share of good events over the SLO window (0..1)."""
    budget_remaining: float | None
    budget_minutes: float | None
    burn: dict[timedelta, float | None]
    trend: list[float | None]
    """Share of the window's budget spent each day, oldest first."""
    alert: Alert | None
    note: str = ""

    @property
    def budget_total_minutes(self) -> float:
        slo = self.ref.slo
        return slo.window / timedelta(minutes=1) * slo.budget_fraction


def burn_rate(counts: Counts | None, budget_fraction: float) -> float | None:
    if counts is None:
        return None
    ratio = counts.error_ratio
    return None if ratio is None else ratio / budget_fraction


def alert_for(burns: dict[timedelta, float | None], alerting: SloAlerting) -> Alert | None:
    for severity, conditions in (
        (Severity.PAGE, alerting.page),
        (Severity.TICKET, alerting.ticket),
    ):
        for condition in conditions:
            long, short = burns.get(condition.long), burns.get(condition.short)
            if long is not None and short is not None and min(long, short) >= condition.burn:
                return Alert(severity, condition)
    return None


def figures(
    ref: SloRef,
    window_counts: Counts | Exception,
    counts_by_window: dict[timedelta, Counts | Exception],
    daily_bad: list[float | None],
    alerting: SloAlerting,
) -> SloFigures:
    slo = ref.slo
    burns: dict[timedelta, float | None] = {}
    for window, counts in counts_by_window.items():
        burns[window] = (
            None if isinstance(counts, Exception) else burn_rate(counts, slo.budget_fraction)
        )

    def unmeasured(status: Status, note: str) -> SloFigures:
        return SloFigures(ref, status, None, None, None, burns, [], None, note)

    if isinstance(window_counts, Exception):
        return unmeasured(Status.ERROR, str(window_counts))
    if window_counts.problem:
        return unmeasured(Status.ERROR, window_counts.problem)
    if window_counts.total is None:
        return unmeasured(Status.NO_DATA, "no data: no series for this SLI yet")
    if window_counts.total <= 0 or window_counts.bad is None:
        return unmeasured(
            Status.NO_DATA, f"no data: no traffic in the last {format_duration(slo.window)}"
        )
    error_ratio = window_counts.error_ratio or 0.0
    allowed = slo.budget_fraction * window_counts.total
    remaining = 1 - window_counts.bad / allowed
    minutes = remaining * slo.window / timedelta(minutes=1) * slo.budget_fraction
    trend = [None if bad is None else bad / allowed for bad in daily_bad]
    alert = alert_for(burns, alerting)
    if (alert is not None and alert.severity is Severity.PAGE) or remaining <= 0:
        status = Status.CRITICAL
    elif alert is not None or remaining < WARNING_BELOW:
        status = Status.WARNING
    else:
        status = Status.OK
    return SloFigures(ref, status, 1 - error_ratio, remaining, minutes, burns, trend, alert)


def worst_first(items: list[SloFigures]) -> list[SloFigures]:
    def key(f: SloFigures) -> tuple[int, float, str]:
        remaining = f.budget_remaining if f.budget_remaining is not None else 2.0
        return STATUS_RANK[f.status], remaining, f.ref.key

    return sorted(items, key=key)
