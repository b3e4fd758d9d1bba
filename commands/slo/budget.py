"""Error-budget arithmetic: SLI, budget left, burn rates, alert conditions and status. Pure.

Burn rate over a window is the window's error ratio divided by the ratio the objective allows
(1x spends the budget exactly over the SLO window). Budget remaining is
1 - bad / (allowed share x total) over the SLO window; negative means overspent. In minutes it
is what is left expressed as minutes of full outage: remaining x window x allowed share.

Every comparison that decides something (an alert condition, a status) is made in exact
rational arithmetic: the counts Prometheus returns are exact binary numbers, the objective and
the burn factors are decimals from the catalog, so `Fraction` compares them without rounding.
A burn of exactly 14.4x does not page (the SRE workbook's conditions are strict: `>`), and
spending the budget exactly on pace (1x) opens no ticket. Floats are made only for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from fractions import Fraction

from commands.slo.queries import Counts, SloRef
from core.catalog import BurnCondition, SloAlerting
from core.durations import format_duration

REPORT_WINDOWS = (
    timedelta(hours=1),
    timedelta(hours=6),
    timedelta(hours=24),
    timedelta(days=3),
)
WARNING_BELOW = Fraction(1, 4)
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


def error_ratio(counts: Counts) -> Fraction | None:
    """bad / total exactly, clamped to 0..1 (counter resets can push `increase` past them)."""
    if counts.bad is None or not counts.total:
        return None
    return min(max(Fraction(counts.bad) / Fraction(counts.total), Fraction(0)), Fraction(1))


def burn_rate(counts: Counts | None, budget_share: Fraction) -> Fraction | None:
    """The window's error ratio over the share the objective allows, exactly."""
    if counts is None:
        return None
    ratio = error_ratio(counts)
    return None if ratio is None else ratio / budget_share


def alert_for(
    burns: dict[timedelta, Fraction | float | None], alerting: SloAlerting
) -> Alert | None:
    """The first condition whose long and short windows both burn strictly faster than its
    factor (pages before tickets)."""
    for severity, conditions in (
        (Severity.PAGE, alerting.page),
        (Severity.TICKET, alerting.ticket),
    ):
        for condition in conditions:
            long, short = burns.get(condition.long), burns.get(condition.short)
            if long is None or short is None:
                continue
            factor = Fraction(condition.burn)
            if Fraction(long) > factor and Fraction(short) > factor:
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
    share = slo.budget_share
    exact: dict[timedelta, Fraction | None] = {
        window: None if isinstance(counts, Exception) else burn_rate(counts, share)
        for window, counts in counts_by_window.items()
    }
    burns = {w: None if b is None else float(b) for w, b in exact.items()}

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
    ratio = error_ratio(window_counts) or Fraction(0)
    allowed = share * Fraction(window_counts.total)
    remaining = 1 - Fraction(window_counts.bad) / allowed
    minutes = remaining * Fraction(slo.window / timedelta(minutes=1)) * share
    allowed_float = float(allowed)  # the trend is only shown: floats are enough
    trend = [None if bad is None else bad / allowed_float for bad in daily_bad]
    alert = alert_for(dict(exact), alerting)
    if (alert is not None and alert.severity is Severity.PAGE) or remaining <= 0:
        status = Status.CRITICAL
    elif alert is not None or remaining < WARNING_BELOW:
        status = Status.WARNING
    else:
        status = Status.OK
    return SloFigures(
        ref, status, float(1 - ratio), float(remaining), float(minutes), burns, trend, alert
    )


def worst_first(items: list[SloFigures]) -> list[SloFigures]:
    def key(f: SloFigures) -> tuple[int, float, str]:
        remaining = f.budget_remaining if f.budget_remaining is not None else 2.0
        return STATUS_RANK[f.status], remaining, f.ref.key

    return sorted(items, key=key)
