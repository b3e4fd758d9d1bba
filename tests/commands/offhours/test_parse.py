from __future__ import annotations

from datetime import timedelta

import pytest

from commands.offhours.parse import parse_command, parse_wake
from core.errors import UserInputError


def test_set_takes_a_quoted_or_bare_schedule() -> None:
    for text in (
        'set pv-x "Mon-Fri 08:00-19:00 Europe/Berlin"',
        "set pv-x “Mon-Fri 08:00-19:00 Europe/Berlin”",
        "set PV-X Mon-Fri 08:00-19:00 Europe/Berlin",
    ):
        cmd = parse_command(text)
        assert (cmd.verb, cmd.environment, cmd.schedule) == (
            "set",
            "pv-x",
            "Mon-Fri 08:00-19:00 Europe/Berlin",
        )
    assert parse_command("set pv-x never").schedule == "never"


def test_report_takes_a_team_and_a_period_in_any_order() -> None:
    assert parse_command("report").period == timedelta(days=30)
    cmd = parse_command("report 7d payments")
    assert (cmd.team, cmd.period) == ("payments", timedelta(days=7))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "Tell me"),
        ("set pv-x", "needs an environment and a schedule"),
        ("set pv_x never", "not an environment name"),
        ('set pv-x "Mon-Fri 19:00-19:00 UTC"', "empty"),
        ("show", "exactly one"),
        ("report a b", "not a team or a period"),
        ("report 2y", "not a duration"),
        ("report 400d", "at most a year"),
        ("sleep pv-x", "not an off-hours command"),
    ],
)
def test_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(UserInputError, match=problem):
        parse_command(text)


def test_wake() -> None:
    assert parse_wake("wake pv-x") == parse_wake("wake pv-x").__class__("pv-x", None)
    assert parse_wake("wake pv-x for 3h").duration == timedelta(hours=3)
    assert parse_wake("wake pv-x 90m").duration == timedelta(minutes=90)
    for bad, problem in (
        ("wake", "needs an environment"),
        ("wake pv-x for", "how long"),
        ("wake pv-x for 2w", "at most 7d"),
    ):
        with pytest.raises(UserInputError, match=problem):
            parse_wake(bad)
