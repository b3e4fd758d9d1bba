"""Catalog freeze windows that start soon: what `/forge freeze` (no arguments) and the platform
team's App Home show next to the freezes in force.

A window is one-off (`2026-12-23T00:00` to `2027-01-02T00:00`) or weekly (`Fri 16:00` to
`Mon 08:00`), read in its own zone; its start and end are returned in that zone so that the
times shown carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from core.catalog import Catalog, FreezeWindow
from core.schedule import weekly_minute as _weekly_minute

HORIZON = timedelta(days=14)
WEEK = 7 * 1440


@dataclass(frozen=True)
class UpcomingWindow:
    environment: str
    name: str
    reason: str
    starts: datetime
    ends: datetime


def _starts(window: FreezeWindow, now: datetime, horizon: timedelta) -> list[datetime]:
    zone = ZoneInfo(window.timezone)
    local = now.astimezone(zone)
    start_week = _weekly_minute(window.start)
    if start_week is None:
        start = datetime.fromisoformat(window.start).replace(tzinfo=zone)
        return [start] if local < start <= local + horizon else []
    day, minute = divmod(start_week, 1440)
    found = []
    for offset in range(horizon.days + 8):
        date = (local + timedelta(days=offset)).date()
        if date.weekday() != day:
            continue
        # Wall-clock time in the window's zone (DST moves the UTC instant, not the window).
        start = datetime(date.year, date.month, date.day, minute // 60, minute % 60, tzinfo=zone)
        if local < start <= local + horizon:
            found.append(start)
    return found


def _end(window: FreezeWindow, start: datetime) -> datetime:
    zone = ZoneInfo(window.timezone)
    start_week, end_week = _weekly_minute(window.start), _weekly_minute(window.end)
    if start_week is None or end_week is None:
        return datetime.fromisoformat(window.end).replace(tzinfo=zone)
    span = (end_week - start_week) % WEEK
    wall = start.replace(tzinfo=None) + timedelta(minutes=span)
    return wall.replace(tzinfo=zone)


def upcoming_windows(
    catalog: Catalog, now: datetime, horizon: timedelta = HORIZON
) -> list[UpcomingWindow]:
    """Windows of every environment that start after `now` and within `horizon`, soonest
    first (a window in force now is a freeze, not an upcoming one)."""
    found = [
        UpcomingWindow(
            environment.name, window.name, window.reason or window.name, start, _end(window, start)
        )
        for environment in catalog.environments
        for window in environment.freeze_windows
        for start in _starts(window, now, horizon)
    ]
    return sorted(found, key=lambda w: (w.starts, w.environment))
