"""Off-hours schedules: when a non-production environment is up, evaluated DST-correctly.

Syntax (compatible with kube-downscaler's weekday expressions):

    Mon-Fri 08:00-19:00 Europe/Berlin
    Mon-Fri 07:30-20:30 Europe/Berlin, Sat 09:00-13:00 Europe/Berlin
    Mon-Fri 19:00-07:00 UTC          (overnight: starts Mon-Fri evening, ends next morning)
    Mon-Fri 08:00-00:00 UTC          (00:00 or 24:00 as an end time means the end of the day)
    down: Sat-Sun 00:00-00:00 UTC    (a downtime expression: up whenever it does not match)
    never | always-on                (forgebot's meaning: never shut down)

Note: in kube-downscaler `never` as an *uptime* means "always down"; in forgebot the schedule
answers "when does this sleep?", and `never` means it never does.

Evaluation is by local wall-clock time in the schedule's zone, so 19:00 in Europe/Berlin is
19:00 on both sides of a DST change. A boundary at a local time that does not exist on the
spring-forward day takes effect at the first instant after the gap. On the fall-back day the
repeated hour is evaluated as it stood at the end of its first occurrence, so a boundary
inside it is crossed once, at its first occurrence, and never undone by the repeat.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.block_limits import quoted

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(
    r"^\s*(?P<days>[A-Za-z]+(?:-[A-Za-z]+)?)\s+(?P<start>\S+)-(?P<end>\S+)\s+(?P<tz>\S+)\s*$"
)
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MINUTES_PER_DAY = 1440


class ScheduleError(ValueError):
    """The schedule text cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Window:
    first_day: int
    last_day: int
    """Weekdays (Mon = 0) the window starts on, first to last, wrapping past Sunday."""
    start: int
    end: int
    """Minutes after local midnight; `end` 1440 is the end of the day; end <= start is overnight."""
    zone: str

    @property
    def days(self) -> frozenset[int]:
        span = (self.last_day - self.first_day) % 7
        return frozenset((self.first_day + i) % 7 for i in range(span + 1))

    def covers(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        weekday = local.weekday()
        if self.start < self.end:
            return weekday in self.days and self.start <= minute < self.end
        # Overnight: from `start` on a listed day until `end` the next morning.
        yesterday = (weekday - 1) % 7
        return (weekday in self.days and minute >= self.start) or (
            yesterday in self.days and minute < self.end
        )

    def describe(self) -> str:
        first, last = DAYS[self.first_day].title(), DAYS[self.last_day].title()
        days = first if first == last else f"{first}-{last}"
        end = "00:00" if self.end == MINUTES_PER_DAY else _hhmm(self.end)
        return f"{days} {_hhmm(self.start)}-{end} {self.zone}"


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...] = ()
    downtime: bool = False
    always_on: bool = False

    def canonical(self) -> str:
        if self.always_on:
            return "never"
        text = ", ".join(w.describe() for w in self.windows)
        return f"down: {text}" if self.downtime else text


@dataclass(frozen=True)
class Transition:
    at: datetime
    up: bool


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _time(text: str, what: str) -> int:
    if what == "end" and text == "24:00":
        return MINUTES_PER_DAY  # the end of the day, as kube-downscaler users write it
    match = _TIME.match(text)
    if match is None:
        ends = " (or 24:00 for the end of the day)" if what == "end" else ""
        raise ScheduleError(
            f"{quoted(text)} is not a time of day: use HH:MM from 00:00 to 23:59{ends} (the {what})"
        )
    return int(match.group(1)) * 60 + int(match.group(2))


_DAY_NAMES = {name: i for i, name in enumerate(DAYS)} | {
    full: i
    for i, full in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    )
}


def _day(text: str) -> int:
    day = _DAY_NAMES.get(text.lower())
    if day is None:
        raise ScheduleError(f"{quoted(text)} is not a day: use Mon, Tue, Wed, Thu, Fri, Sat or Sun")
    return day


def _days(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    start = _day(first)
    return start, _day(last) if last else start


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a folder of the time-zone database (`Europe`) on some platforms.
        raise ScheduleError(
            f"{quoted(name)} is not an IANA time zone (like Europe/Berlin, America/New_York or UTC)"
        ) from None
    return name


def _occupied(window: Window) -> set[int]:
    """Minutes of the week (Mon 00:00 = 0) the window covers, for overlap checks."""
    minutes: set[int] = set()
    for day in window.days:
        base = day * MINUTES_PER_DAY
        if window.start < window.end:
            minutes.update(range(base + window.start, base + window.end))
        else:
            minutes.update(
                (m % (7 * MINUTES_PER_DAY))
                for m in range(base + window.start, base + MINUTES_PER_DAY + window.end)
            )
    return minutes


def parse_schedule(text: str) -> Schedule:
    cleaned = text.strip()
    if not cleaned:
        raise ScheduleError(
            "The schedule is empty: write e.g. `Mon-Fri 08:00-19:00 Europe/Berlin`, or `never`."
        )
    if cleaned.lower() in ("never", "always-on", "always on"):
        return Schedule(always_on=True)
    downtime = False
    if cleaned.lower().startswith("down:"):
        downtime, cleaned = True, cleaned[5:].strip()
    windows: list[Window] = []
    for part in cleaned.split(","):
        match = _RANGE.match(part)
        if match is None:
            raise ScheduleError(
                f"{quoted(part.strip())} is not a range: write DAYS HH:MM-HH:MM ZONE, like `Mon-Fri 08:00-19:00 Europe/Berlin`"
            )
        start = _time(match.group("start"), "start")
        end = _time(match.group("end"), "end")
        if end == 0:
            end = MINUTES_PER_DAY
        if start == end:
            raise ScheduleError(
                f"{quoted(part.strip())} starts and ends at the same time: the window would be empty"
            )
        first_day, last_day = _days(match.group("days"))
        windows.append(Window(first_day, last_day, start, end, _zone(match.group("tz"))))
    for i, first in enumerate(windows):
        for second in windows[i + 1 :]:
            if first.zone == second.zone and _occupied(first) & _occupied(second):
                raise ScheduleError(
                    f"{quoted(first.describe())} and {quoted(second.describe())} overlap: merge them into one range"
                )
    return Schedule(tuple(windows), downtime=downtime)


def is_up(schedule: Schedule, at: datetime, holidays: Iterable[date] = frozenset()) -> bool:
    if schedule.always_on:
        return True
    if at.tzinfo is None:
        raise ValueError("is_up needs an aware datetime")
    holiday_set = frozenset(holidays)
    matched = False
    for window in schedule.windows:
        local = _wall_time(at, ZoneInfo(window.zone))
        if window.covers(local):
            matched = True
            break
    up = not matched if schedule.downtime else matched
    if up and holiday_set and schedule.windows:
        local_date = at.astimezone(ZoneInfo(schedule.windows[0].zone)).date()
        if local_date in holiday_set:
            return False
    return up


def _wall_time(at: datetime, zone: ZoneInfo) -> datetime:
    """The local wall time that decides the state at `at`: inside the second occurrence of a
    fall-back repeated hour, the wall time at the end of the first occurrence (so a boundary
    in that hour is crossed once)."""
    local = at.astimezone(zone)
    if not local.fold:
        return local
    # The repeat began when the offset dropped; the first occurrence ended one minute before.
    probe = at.replace(second=0, microsecond=0)
    while probe.astimezone(zone).fold:
        probe -= timedelta(minutes=1)
    return probe.astimezone(zone)


def _minutes(start: datetime, end: datetime) -> Iterable[datetime]:
    current = start.astimezone(UTC).replace(second=0, microsecond=0)
    if current < start:
        current += timedelta(minutes=1)
    while current < end:
        yield current
        current += timedelta(minutes=1)


def transitions_between(
    schedule: Schedule, start: datetime, end: datetime, holidays: Iterable[date] = frozenset()
) -> list[Transition]:
    """Every change of state in [start, end), at minute resolution (schedules are HH:MM)."""
    holiday_set = frozenset(holidays)
    if schedule.always_on:
        return []
    state = is_up(schedule, start, holiday_set)
    changes: list[Transition] = []
    for minute in _minutes(start, end):
        now_up = is_up(schedule, minute, holiday_set)
        if now_up != state:
            changes.append(Transition(minute, now_up))
            state = now_up
    return changes


def next_transition(
    schedule: Schedule,
    after: datetime,
    holidays: Iterable[date] = frozenset(),
    horizon: timedelta = timedelta(days=8),
) -> Transition | None:
    found = transitions_between(schedule, after, after + horizon, holidays)
    return found[0] if found else None


def downtime_hours(
    schedule: Schedule, start: datetime, end: datetime, holidays: Iterable[date] = frozenset()
) -> float:
    if schedule.always_on or end <= start:
        return 0.0
    holiday_set = frozenset(holidays)
    down = 0.0
    state_up = is_up(schedule, start, holiday_set)
    cursor = start
    for change in transitions_between(schedule, start, end, holiday_set):
        if not state_up:
            down += (change.at - cursor).total_seconds()
        cursor, state_up = change.at, change.up
    if not state_up:
        down += (end - cursor).total_seconds()
    return down / 3600


def upcoming_shutdown(
    schedule: Schedule, now: datetime, lead: timedelta, holidays: Iterable[date] = frozenset()
) -> datetime | None:
    """The next up->down change if it falls within `lead` of now (for reminders)."""
    if not is_up(schedule, now, holidays):
        return None
    change = next_transition(schedule, now, holidays, horizon=lead + timedelta(minutes=1))
    return change.at if change is not None and not change.up and change.at - now <= lead else None
