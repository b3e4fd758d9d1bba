from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.durations import DurationError, format_duration, format_for_people, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(hours=36)),
        (" 2H ", timedelta(hours=2)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "3", "d", "3 days", "-2h", "0h", "2h;rm", "1.5h"])
def test_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=60 * 24 * 400))
def test_format_round_trips_whole_minutes(minutes: int) -> None:
    delta = timedelta(minutes=minutes)
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    ("delta", "shown"),
    [
        (timedelta(days=14) - timedelta(seconds=61), "14d"),
        (timedelta(days=3, hours=5, minutes=20), "3d5h"),
        (timedelta(hours=23, minutes=59), "1d"),
        (timedelta(hours=2, minutes=33), "2h35m"),
        (timedelta(minutes=59, seconds=50), "1h"),
        (timedelta(minutes=44, seconds=31), "45m"),
        (timedelta(seconds=5), "1m"),
        (timedelta(0), "0m"),
    ],
)
def test_durations_for_people_are_rounded(delta: timedelta, shown: str) -> None:
    assert format_for_people(delta) == shown
