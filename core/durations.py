"""Human durations (`30m`, `2h`, `3d`, `1w`, `1d12h`) used by the catalog and by commands."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from core.block_limits import quoted

_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_WHOLE = re.compile(r"(?:\d+\s*[wdhms]\s*)+")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    """Parse `90m`, `2h`, `3d`, `1w`, `1d12h`. Raises DurationError with a fix-it message."""
    cleaned = text.strip().lower()
    if not cleaned or _WHOLE.fullmatch(cleaned) is None:
        raise DurationError(
            f"{quoted(text)} is not a duration: use a number and a unit, like 30m, 2h, 3d or 1w"
        )
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(cleaned))
    if seconds <= 0:
        raise DurationError(f"{quoted(text)} is zero: give a duration longer than that")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Compact and exact: 3d, 1d12h, 45m; never a fraction."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0m"
    parts = []
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds and not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


def format_for_people(delta: timedelta) -> str:
    """How long, for a person: rounded so that "14d" just after asking for 14 days never
    reads "13d23h59m". Days and hours from a day on (to the nearest hour), hours and minutes
    from an hour on (to the nearest 5 minutes), minutes below (at least 1m)."""
    seconds = delta.total_seconds()
    if seconds <= 0:
        return "0m"
    if seconds >= 86400 - 1800:
        step = 3600
    elif seconds >= 3600 - 150:
        step = 300
    else:
        step = 60
    rounded = max(step, int((seconds + step / 2) // step * step))
    return format_duration(timedelta(seconds=rounded))


def _coerce(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise DurationError("durations need a unit: write 3d or 12h, not a bare number")
    return value


Duration = Annotated[
    timedelta, BeforeValidator(_coerce), PlainSerializer(format_duration, return_type=str)
]
"""A pydantic field type that reads `3d`-style strings and writes them back the same way."""
