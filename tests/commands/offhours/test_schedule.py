from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.schedule import (
    ScheduleError,
    downtime_hours,
    is_up,
    next_transition,
    parse_schedule,
    transitions_between,
    upcoming_shutdown,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("Mon-Fri 24:01-19:00 UTC", "24:01"),
        ("Mon-Fri 08:00-25:00 UTC", "25:00"),
        ("Mon-Fri 8:0-19:00 UTC", "8:0"),
        ("Mon-Fry 08:00-19:00 UTC", "Fry"),
        ("Mon 08:00-08:00 UTC", "empty"),
        ("Mon-Fri 08:00-19:00 Mars/Base", "IANA"),
        ("Mon-Fri 08:00-19:00", "not a range"),
        ("Mon-Fri 08:00-12:00 UTC, Mon 11:00-13:00 UTC", "overlap"),
    ],
)
def test_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(ScheduleError, match=problem):
        parse_schedule(text)


def test_working_hours_in_berlin() -> None:
    schedule = parse_schedule("Mon-Fri 08:00-19:00 Europe/Berlin")
    assert is_up(schedule, local(BERLIN, 2026, 11, 24, 8, 0))
    assert not is_up(schedule, local(BERLIN, 2026, 11, 24, 7, 59))
    assert not is_up(schedule, local(BERLIN, 2026, 11, 24, 19, 0))
    assert not is_up(schedule, local(BERLIN, 2026, 11, 28, 12, 0)), "Saturday"
    assert (
        downtime_hours(schedule, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 8, tzinfo=UTC))
        == 113
    )


def test_overnight_and_end_of_day() -> None:
    night = parse_schedule("Mon-Fri 19:00-07:00 UTC")
    assert is_up(night, datetime(2026, 11, 27, 23, 0, tzinfo=UTC)), "Friday night"
    assert is_up(night, datetime(2026, 11, 28, 6, 59, tzinfo=UTC)), "Saturday morning, from Friday"
    assert not is_up(night, datetime(2026, 11, 28, 19, 0, tzinfo=UTC)), "Saturday evening"
    long_day = parse_schedule("Mon-Fri 08:00-00:00 UTC")
    assert is_up(long_day, datetime(2026, 11, 24, 23, 59, tzinfo=UTC))
    assert not is_up(long_day, datetime(2026, 11, 25, 0, 0, tzinfo=UTC)), (
        "the window ended at midnight"
    )
    wrap = parse_schedule("Sun 22:00-02:00 UTC")
    assert is_up(wrap, datetime(2026, 11, 30, 1, 0, tzinfo=UTC)), "Monday 01:00, from Sunday"


def test_never_and_downtime_forms() -> None:
    assert is_up(parse_schedule("never"), datetime(2026, 11, 28, 3, 0, tzinfo=UTC))
    weekend_down = parse_schedule("down: Sat-Sun 00:00-00:00 UTC")
    assert not is_up(weekend_down, datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    assert is_up(weekend_down, datetime(2026, 11, 27, 12, 0, tzinfo=UTC))


def test_holidays_sleep_all_day() -> None:
    schedule = parse_schedule("Mon-Fri 08:00-19:00 Europe/Berlin")
    christmas = local(BERLIN, 2026, 12, 25, 10, 0)
    assert is_up(schedule, christmas)
    assert not is_up(schedule, christmas, {date(2026, 12, 25)})


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        (BERLIN, date(2026, 3, 29)),
        (BERLIN, date(2026, 10, 25)),
        (NEW_YORK, date(2026, 3, 8)),
        (NEW_YORK, date(2026, 11, 1)),
    ],
)
def test_shutdown_at_19_local_on_dst_days(zone: ZoneInfo, day: date) -> None:
    schedule = parse_schedule(f"Mon-Sun 08:00-19:00 {zone.key}")
    start = datetime(day.year, day.month, day.day, tzinfo=zone) - timedelta(days=1)
    changes = transitions_between(
        schedule, start.astimezone(UTC), (start + timedelta(days=3)).astimezone(UTC)
    )
    downs = [c.at.astimezone(zone) for c in changes if not c.up]
    assert [(d.hour, d.minute) for d in downs] == [(19, 0)] * 3, (
        "once a day at 19:00 local, never twice or skipped"
    )


def test_boundary_in_the_spring_gap_happens_after_it() -> None:
    schedule = parse_schedule("Sun 02:30-12:00 Europe/Berlin")
    change = next_transition(schedule, local(BERLIN, 2026, 3, 29, 0, 0))
    assert change is not None and change.up
    assert change.at.astimezone(BERLIN).hour == 3 and change.at.astimezone(BERLIN).minute == 0


def test_reminder_window() -> None:
    schedule = parse_schedule("Mon-Fri 08:00-19:00 Europe/Berlin")
    at = upcoming_shutdown(schedule, local(BERLIN, 2026, 11, 24, 18, 40), timedelta(minutes=30))
    assert at == local(BERLIN, 2026, 11, 24, 19, 0)
    assert (
        upcoming_shutdown(schedule, local(BERLIN, 2026, 11, 24, 18, 0), timedelta(minutes=30))
        is None
    )


texts = st.sampled_from(
    [
        "Mon-Fri 08:00-19:00 Europe/Berlin",
        "Mon-Fri 19:00-07:00 UTC",
        "Sat-Mon 10:00-00:00 Australia/Sydney",
        "Mon-Fri 07:30-20:30 America/New_York, Sat 09:00-13:00 America/New_York",
        "down: Sat-Sun 00:00-00:00 UTC",
    ]
)


@settings(max_examples=30, deadline=None)
@given(texts, st.integers(min_value=0, max_value=365 * 24))
def test_properties(text: str, hour: int) -> None:
    schedule = parse_schedule(text)
    assert parse_schedule(schedule.canonical()) == schedule
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
    end = start + timedelta(days=2)
    changes = transitions_between(schedule, start, end)
    assert all(a.at < b.at and a.up != b.up for a, b in itertools.pairwise(changes))
    for change in changes:
        assert is_up(schedule, change.at) is change.up
        assert is_up(schedule, change.at - timedelta(minutes=1)) is not change.up
    down = downtime_hours(schedule, start, end)
    assert 0 <= down <= 48


def test_a_boundary_in_the_repeated_fall_back_hour_is_crossed_once() -> None:
    """Berlin falls back on 25 Oct 2026: 02:00-03:00 happens twice. A window ending at 02:30
    goes down at the first 02:30 and stays down through the repeat."""
    from datetime import UTC, datetime

    from core.schedule import parse_schedule, transitions_between

    schedule = parse_schedule("Sat-Sun 20:00-02:30 Europe/Berlin")
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # Sun 00:00 CEST, up
    changes = transitions_between(schedule, start, start + timedelta(hours=6))
    assert [(c.at, c.up) for c in changes] == [(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), False)]


def test_a_boundary_starting_in_the_repeated_hour_is_crossed_once() -> None:
    from datetime import UTC, datetime

    from core.schedule import parse_schedule, transitions_between

    schedule = parse_schedule("Sun 02:30-12:00 Europe/Berlin")
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    changes = transitions_between(schedule, start, start + timedelta(hours=6))
    assert [(c.at, c.up) for c in changes] == [(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), True)]


def test_24_00_ends_the_day_and_zone_folders_are_schedule_errors() -> None:
    from core.schedule import ScheduleError, parse_schedule

    assert parse_schedule("Mon-Fri 08:00-24:00 UTC") == parse_schedule("Mon-Fri 08:00-00:00 UTC")
    for zone in ("Europe", "Europe/", "America", "../etc/passwd"):
        with pytest.raises(ScheduleError, match="IANA time zone"):
            parse_schedule(f"Mon-Fri 08:00-19:00 {zone}")
    with pytest.raises(ScheduleError):
        parse_schedule("Mon-Fri 24:00-19:00 UTC")
