"""`/forge offhours ...` and `/forge env wake ...` text -> typed requests, with fix-it errors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from core.block_limits import escape
from core.catalog import DNS_LABEL
from core.durations import DurationError, parse_duration
from core.errors import UserInputError
from core.schedule import ScheduleError, parse_schedule

USAGE = "\n".join(
    f"`/forge offhours {line}`"
    for line in (
        'set ENV "Mon-Fri 08:00-19:00 Europe/Berlin"',
        "set ENV never",
        "show ENV",
        "report [TEAM] [30d]",
    )
)
WAKE_USAGE = "`/forge env wake ENV [for 3h]`"
DEFAULT_PERIOD = timedelta(days=30)
_QUOTES = "\"'“”‘’"


@dataclass(frozen=True)
class OffhoursCommand:
    verb: Literal["set", "show", "report"]
    environment: str = ""
    schedule: str = ""
    team: str | None = None
    period: timedelta = DEFAULT_PERIOD


@dataclass(frozen=True)
class WakeCommand:
    environment: str
    duration: timedelta | None


def _environment(raw: str, usage: str) -> str:
    name = raw.strip().lower()
    if DNS_LABEL.fullmatch(name) is None or len(name) > 63:
        raise UserInputError(f"`{escape(raw)}` is not an environment name.", usage=usage)
    return name


def parse_command(args: str) -> OffhoursCommand:
    words = args.split()
    if not words:
        raise UserInputError("Tell me what to do with off-hours.", usage=USAGE)
    verb, rest = words[0].lower(), words[1:]
    if verb == "set":
        if len(rest) < 2:
            raise UserInputError(
                '`set` needs an environment and a schedule, like `set pv-checkout "Mon-Fri '
                '08:00-19:00 Europe/Berlin"` (or `never`).',
                usage=USAGE,
            )
        schedule = " ".join(rest[1:]).strip().strip(_QUOTES).strip()
        try:
            parse_schedule(schedule)  # refused here, before anything is acknowledged
        except ScheduleError as exc:
            raise UserInputError(str(exc), usage=USAGE) from None
        return OffhoursCommand("set", environment=_environment(rest[0], USAGE), schedule=schedule)
    if verb == "show":
        if len(rest) != 1:
            raise UserInputError("`show` needs exactly one environment name.", usage=USAGE)
        return OffhoursCommand("show", environment=_environment(rest[0], USAGE))
    if verb == "report":
        team: str | None = None
        period = DEFAULT_PERIOD
        for word in rest:
            if word[:1].isdigit():
                try:
                    period = parse_duration(word)
                except DurationError as exc:
                    raise UserInputError(str(exc), usage=USAGE) from None
            elif team is None:
                team = word.lower()
            else:
                raise UserInputError(
                    f"`{escape(word)}` is not a team or a period (like 30d).", usage=USAGE
                )
        if period > timedelta(days=366):
            raise UserInputError("A report covers at most a year (366d).", usage=USAGE)
        return OffhoursCommand("report", team=team, period=period)
    raise UserInputError(f"`{escape(verb)}` is not an off-hours command.", usage=USAGE)


def parse_wake(args: str) -> WakeCommand:
    """`wake ENV [for 3h]` (the words after `/forge env`)."""
    words = args.split()[1:]
    if not words:
        raise UserInputError("`wake` needs an environment name.", usage=WAKE_USAGE)
    name = _environment(words[0], WAKE_USAGE)
    rest = words[1:]
    if not rest:
        return WakeCommand(name, None)
    if rest[0].lower() == "for":
        rest = rest[1:]
    if len(rest) != 1:
        raise UserInputError("Say how long, like `for 3h`.", usage=WAKE_USAGE)
    try:
        duration = parse_duration(rest[0])
    except DurationError as exc:
        raise UserInputError(str(exc), usage=WAKE_USAGE) from None
    if duration > timedelta(days=7):
        raise UserInputError("Wake for at most 7d; change the schedule for longer.")
    return WakeCommand(name, duration)
