"""Cost figures against references computed here, independently, from generated daily costs:
totals, complete-day comparisons (prorated when the day counts differ), the month to date,
the linear forecast and the budget thresholds reached."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from commands.cost.alerts import ACTUAL, FORECAST, Crossing, crossings
from commands.cost.cache import Cached
from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import Period, window
from commands.cost.service import BudgetLine, summarize
from integrations.aws.cost_types import (
    SERVICE,
    CostBucket,
    CostGroup,
    CostQuery,
    CostReport,
    DateRange,
    Granularity,
    TagFilter,
)

SCOPE = Scope(ScopeKind.TEAM, "payments")
SERVICES = ("EC2", "RDS", "S3")
amounts = st.decimals(min_value=Decimal(0), max_value=Decimal(500), places=4)
days_strategy = st.dates(min_value=date(2024, 1, 1), max_value=date(2027, 12, 31))


def _report(today: date, period: Period, costs: dict[date, dict[str, Decimal]]) -> CostReport:
    fetch = window(period, today).fetch
    query = CostQuery(
        period=fetch,
        granularity=Granularity.DAILY,
        filter_tag=TagFilter("team", "payments"),
        group_by=SERVICE,
    )
    buckets = []
    for offset in range(fetch.days):
        day = fetch.start + timedelta(days=offset)
        if day not in costs:
            continue  # Cost Explorer leaves out days without cost
        groups = tuple(CostGroup(key=k, amount=v) for k, v in costs[day].items())
        buckets.append(
            CostBucket(
                period=DateRange(start=day, end=day + timedelta(days=1)),
                total=sum((g.amount for g in groups), Decimal(0)),
                groups=groups,
            )
        )
    return CostReport(query=query, currency="USD", buckets=tuple(buckets), requests=1)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[date, Period, dict[date, dict[str, Decimal]]]:
    today = draw(days_strategy)
    period = draw(st.sampled_from(list(Period)))
    fetch = window(period, today).fetch
    costs: dict[date, dict[str, Decimal]] = {}
    for offset in range(fetch.days):
        day = fetch.start + timedelta(days=offset)
        if draw(st.integers(0, 9)) == 0:
            continue
        costs[day] = {s: draw(amounts) for s in SERVICES if draw(st.booleans())}
    return today, period, costs


def _spent(costs: dict[date, dict[str, Decimal]], start: date, end: date) -> Decimal:
    """Sum of every service's cost on the days start..end-1, day by day."""
    total, day = Decimal(0), start
    while day < end:
        total += sum(costs.get(day, {}).values(), Decimal(0))
        day += timedelta(days=1)
    return total


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _previous_month_start(day: date) -> date:
    first = _month_start(day)
    return (first - timedelta(days=1)).replace(day=1)


@settings(deadline=None)  # the machine may be busy; the figures, not the time, are tested
@given(scenario())
def test_totals_comparisons_and_forecast(
    data: tuple[date, Period, dict[date, dict[str, Decimal]]],
) -> None:
    today, period, costs = data
    fetched = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    cached = Cached(_report(today, period, costs), fetched, fetched + timedelta(hours=6), hit=False)
    summary = summarize(SCOPE, period, today, cached, None, None)
    tomorrow = today + timedelta(days=1)

    # The days shown and the complete days compared, written out from the definitions.
    if period is Period.THIS_MONTH:
        shown = (_month_start(today), tomorrow)
        compared = (_month_start(today), today) if today.day > 1 else None
        before_start = _previous_month_start(today)
        n = max(today.day - 1, 1)
        before = (before_start, min(before_start + timedelta(days=n), _month_start(today)))
    elif period is Period.LAST_MONTH:
        start = _previous_month_start(today)
        shown = compared = (start, _month_start(today))
        before = (_previous_month_start(start), start)
    else:
        n = 30 if period is Period.LAST_30_DAYS else 7
        shown = compared = (today - timedelta(days=n), today)
        before = (today - timedelta(days=2 * n), today - timedelta(days=n))

    assert summary.total == _spent(costs, *shown)
    assert summary.previous_total == _spent(costs, *before)
    assert summary.month_to_date == _spent(costs, _month_start(today), tomorrow)
    by_service = {
        s: sum((costs.get(d, {}).get(s, Decimal(0)) for d in _each(*shown)), Decimal(0))
        for s in SERVICES
    }
    assert dict(summary.services) == {s: v for s, v in by_service.items() if v != 0}

    if compared is None:
        assert summary.change is None
    else:
        now, then = _spent(costs, *compared), _spent(costs, *before)
        now_days, then_days = (compared[1] - compared[0]).days, (before[1] - before[0]).days
        if then == 0:
            assert summary.change is None
        elif now_days == then_days:
            assert not summary.prorated
            assert summary.change == (now - then) / then
        else:
            assert summary.prorated
            assert summary.change == (now / now_days - then / then_days) / (then / then_days)

    # Linear forecast: the month's days before today, plus the last 14 days' average for
    # each day left (today included); none when those 14 days cost nothing.
    basis = _spent(costs, today - timedelta(days=14), today)
    month_end = (_month_start(today) + timedelta(days=32)).replace(day=1)
    if basis == 0:
        assert summary.forecast is None
    else:
        expected = _spent(costs, _month_start(today), today) + basis / 14 * (month_end - today).days
        assert summary.forecast is not None
        assert summary.forecast.amount == expected.quantize(Decimal("0.01"), ROUND_HALF_UP)


def _each(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


@settings(deadline=None)  # the machine may be busy; the figures, not the time, are tested
@given(
    spent=st.decimals(min_value=Decimal(0), max_value=Decimal(100_000), places=2),
    monthly=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(50_000), places=2),
    actual_thresholds=st.lists(st.integers(1, 1000), max_size=5, unique=True),
    forecast_thresholds=st.lists(st.integers(1, 1000), max_size=3, unique=True),
)
def test_budget_thresholds_reached(
    spent: Decimal,
    monthly: Decimal,
    actual_thresholds: list[int],
    forecast_thresholds: list[int],
) -> None:
    today = date(2026, 11, 24)
    costs = {date(2026, 11, 2): {"EC2": spent}}
    fetched = datetime(2026, 11, 24, tzinfo=UTC)
    report = _report(today, Period.THIS_MONTH, costs)
    summary = summarize(
        SCOPE,
        Period.THIS_MONTH,
        today,
        Cached(report, fetched, fetched, hit=False),
        None,
        None,
    )
    budget = BudgetLine("payments", SCOPE, monthly, "catalog")
    found = set(crossings(summary, budget, actual_thresholds, forecast_thresholds))
    # Reached: spend * 100 >= budget * threshold (a threshold exactly met is reached).
    expected = {Crossing(ACTUAL, t) for t in actual_thresholds if spent * 100 >= monthly * t}
    if summary.forecast is not None:
        f = summary.forecast.amount
        expected |= {Crossing(FORECAST, t) for t in forecast_thresholds if f * 100 >= monthly * t}
    assert found == expected


@settings(deadline=None)  # the machine may be busy; the figures, not the time, are tested
@given(scenario(), st.decimals(min_value=Decimal(0), max_value=Decimal(100_000), places=4))
def test_cost_explorer_forecast_is_added_to_the_days_before_today(
    data: tuple[date, Period, dict[date, dict[str, Decimal]]], rest: Decimal
) -> None:
    from integrations.aws.cost_types import Forecast, ForecastMethod

    today, period, costs = data
    fetched = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    cached = Cached(_report(today, period, costs), fetched, fetched, hit=False)
    month_end = (_month_start(today) + timedelta(days=32)).replace(day=1)
    forecast = Forecast(
        period=DateRange(start=today, end=month_end),
        currency="USD",
        amount=rest,
        method=ForecastMethod.COST_EXPLORER,
    )
    summary = summarize(SCOPE, period, today, cached, None, forecast)
    expected = _spent(costs, _month_start(today), today) + rest
    assert summary.forecast is not None
    assert summary.forecast.amount == expected.quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert summary.forecast.explanation == "Cost Explorer forecast"
