"""Parsing `/forge cost` and `/forge budget`, and the days each period covers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from commands.cost.parse import ScopeKind, parse_amount, parse_budget, parse_cost
from commands.cost.periods import Period, window
from core.catalog import Catalog, CatalogError, parse_catalog
from core.errors import UserInputError


def test_scope_period_and_chart_in_any_order(catalog: Catalog) -> None:
    command = parse_cost("chart 7d service checkout", catalog)
    assert command.scope is not None and command.scope.kind is ScopeKind.SERVICE
    assert command.scope.name == "checkout"
    assert command.period is Period.LAST_7_DAYS and command.chart


def test_defaults_are_my_team_this_month(catalog: Catalog) -> None:
    command = parse_cost("", catalog)
    assert command.scope is None and command.period is Period.THIS_MONTH and not command.chart


def test_a_bare_team_name_is_a_team(catalog: Catalog) -> None:
    command = parse_cost("search last-month", catalog)
    assert command.scope is not None and command.scope.kind is ScopeKind.TEAM


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "team nobody",
            "There is no team called `nobody`. Known: `platform`, `payments`, `search`.",
        ),
        ("service nope", "There is no service called `nope`."),
        ("env Not_A_Name", "is not an environment name"),
        (
            "yesterday",
            "`yesterday` is not a period or a scope. Periods: this-month, last-month, 30d, 7d.",
        ),
        ("7d 30d", "Give one period."),
        ("team payments team search", "Name one team, service or environment."),
    ],
)
def test_bad_cost_input(catalog: Catalog, text: str, message: str) -> None:
    with pytest.raises(UserInputError) as raised:
        parse_cost(text, catalog)
    assert message in str(raised.value)


def test_any_environment_name_is_allowed(catalog: Catalog) -> None:
    # Self-service environments are not in the catalog; their tag value is their name.
    command = parse_cost("env pv-feature-x", catalog)
    assert command.scope is not None and command.scope.name == "pv-feature-x"


@pytest.mark.parametrize(
    ("text", "amount"),
    [("5000", "5000.00"), ("$5,000", "5000.00"), ("5k", "5000.00"), ("4999.5", "4999.50")],
)
def test_amounts(text: str, amount: str) -> None:
    assert parse_amount(text) == Decimal(amount)


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.001", "NaN", "Infinity", "1e12"])
def test_bad_amounts(text: str) -> None:
    with pytest.raises(UserInputError):
        parse_amount(text)


def test_budget_commands(catalog: Catalog) -> None:
    assert parse_budget("", catalog).verb == "list"
    command = parse_budget("set Payments 6000", catalog)
    assert (command.verb, command.team, command.amount) == ("set", "payments", Decimal("6000.00"))


def test_this_month_is_compared_with_the_same_days_of_the_month_before() -> None:
    w = window(Period.THIS_MONTH, date(2026, 3, 30))
    assert (w.current.start, w.current.end) == (date(2026, 3, 1), date(2026, 3, 31))
    # The complete days are March 1-29; February has 28 days: the comparison stops at its end.
    assert w.compared is not None
    assert (w.compared.start, w.compared.end) == (date(2026, 3, 1), date(2026, 3, 30))
    assert (w.previous.start, w.previous.end) == (date(2026, 2, 1), date(2026, 3, 1))
    assert w.fetch.start == date(2026, 2, 1) and w.fetch.end == date(2026, 3, 31)


def test_the_first_of_the_month() -> None:
    w = window(Period.THIS_MONTH, date(2026, 1, 1))
    assert (w.current.start, w.current.end) == (date(2026, 1, 1), date(2026, 1, 2))
    assert w.compared is None, "no complete day yet: nothing to compare"
    assert (w.previous.start, w.previous.end) == (date(2025, 12, 1), date(2025, 12, 2))
    # The forecast basis (14 days) reaches back into December.
    assert w.fetch.start == date(2025, 12, 1)


def test_last_month_and_rolling_periods() -> None:
    last = window(Period.LAST_MONTH, date(2026, 3, 10))
    assert (last.current.start, last.current.end) == (date(2026, 2, 1), date(2026, 3, 1))
    assert (last.previous.start, last.previous.end) == (date(2026, 1, 1), date(2026, 2, 1))
    # The last 7 complete days: today (the 10th) is not over.
    week = window(Period.LAST_7_DAYS, date(2026, 3, 10))
    assert (week.current.start, week.current.end) == (date(2026, 3, 3), date(2026, 3, 10))
    assert week.compared == week.current
    assert (week.previous.start, week.previous.end) == (date(2026, 2, 24), date(2026, 3, 3))
    assert week.fetch.start == date(2026, 2, 24)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('budget_alert_time: "9am"', "is not a time of day like 09:00"),
        ("budget_thresholds: [0, 80]", "thresholds are percentages"),
    ],
)
def test_schedule_settings_are_checked(line: str, problem: str) -> None:
    text = f"""
platform_team: platform
teams:
  - {{name: platform, channel: C0PLATFORM, members: [U0PLATFORM]}}
schedules:
  {line}
"""
    with pytest.raises(CatalogError) as raised:
        parse_catalog(text)
    assert problem in str(raised.value)
