"""Which days a cost period covers, what it is compared with, and the one Cost Explorer
query that answers everything `/forge cost` shows about it.

Days are UTC days, as Cost Explorer counts them; ranges are start-inclusive, end-exclusive.
"This month" includes today (its cost so far, which Cost Explorer marks estimated); the
rolling periods are the last 7 or 30 *complete* days.

Comparisons are between complete days only: this month's days before today against the same
days of the month before (none on the 1st: nothing is compared then), last month against
the month before, a rolling period against the as many days before it. When the two sides
have different numbers of days (March 1-30 against February's 28), their daily averages are
compared instead of their totals, and the message says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from integrations.aws.cost_types import DateRange

FORECAST_BASIS_DAYS = 14
"""A linear forecast averages the last this many full days."""


class Period(StrEnum):
    THIS_MONTH = "this-month"
    LAST_MONTH = "last-month"
    LAST_30_DAYS = "30d"
    LAST_7_DAYS = "7d"

    @property
    def label(self) -> str:
        return {
            Period.THIS_MONTH: "this month",
            Period.LAST_MONTH: "last month",
            Period.LAST_30_DAYS: "the last 30 days",
            Period.LAST_7_DAYS: "the last 7 days",
        }[self]


@dataclass(frozen=True)
class Window:
    """The days shown, the days they are compared with, and the days fetched for both plus
    the month-to-date and forecast basis (one request serves them all)."""

    period: Period
    current: DateRange
    """The days whose cost is shown."""
    compared: DateRange | None
    """The complete days of `current` that are compared (None: none yet, on the 1st)."""
    previous: DateRange
    """The complete days they are compared with."""
    fetch: DateRange
    month: DateRange
    """The calendar month containing today: what budgets and forecasts are about."""


def _previous_month(first_of_month: date) -> date:
    return (first_of_month - timedelta(days=1)).replace(day=1)


def window(period: Period, today: date) -> Window:
    tomorrow = today + timedelta(days=1)
    month = DateRange.month_of(today)
    compared: DateRange | None
    if period is Period.THIS_MONTH:
        current = DateRange(start=month.start, end=tomorrow)
        prev_start = _previous_month(month.start)
        # The complete days so far against as many days of the month before (capped at its
        # end, where the daily averages are compared).
        complete = (today - month.start).days
        compared = DateRange(start=month.start, end=today) if complete else None
        prev_end = min(prev_start + timedelta(days=max(complete, 1)), month.start)
        previous = DateRange(start=prev_start, end=prev_end)
    elif period is Period.LAST_MONTH:
        start = _previous_month(month.start)
        current = compared = DateRange(start=start, end=month.start)
        previous = DateRange(start=_previous_month(start), end=start)
    else:
        days = 30 if period is Period.LAST_30_DAYS else 7
        current = compared = DateRange(start=today - timedelta(days=days), end=today)
        previous = DateRange(start=current.start - timedelta(days=days), end=current.start)
    fetch_start = min(previous.start, month.start, today - timedelta(days=FORECAST_BASIS_DAYS))
    fetch = DateRange(start=fetch_start, end=tomorrow)
    return Window(
        period=period,
        current=current,
        compared=compared,
        previous=previous,
        fetch=fetch,
        month=month,
    )


def day_range(days: DateRange) -> str:
    """ "Nov 1 – Nov 23" for the days of a range (its end is exclusive), "Nov 1" for one."""
    last = days.end - timedelta(days=1)
    first = f"{days.start:%b} {days.start.day}"
    return first if last == days.start else f"{first} – {last:%b} {last.day}"
