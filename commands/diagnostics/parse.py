"""`SERVICE ENV [--since 15m] [--container C] [--previous] [--pod NAME]`."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import timedelta

from core.block_limits import escape
from core.catalog import Catalog, Workload
from core.durations import DurationError, parse_duration
from core.errors import NotFound, UserInputError

USAGE = "\n".join(
    [
        "`/forge status SERVICE ENV`",
        "`/forge pods SERVICE ENV`",
        "`/forge events SERVICE ENV [--since 1h]`",
        "`/forge logs SERVICE ENV [--since 15m] [--container C] [--previous] [--pod NAME]`",
    ]
)
DEFAULT_SINCE = timedelta(minutes=15)
MAX_SINCE = timedelta(days=1)


@dataclass(frozen=True)
class Target:
    service: str
    environment: str
    workload: Workload
    since: timedelta = DEFAULT_SINCE
    container: str = ""
    previous: bool = False
    pod: str = ""


def parse(args: str, catalog: Catalog) -> Target:
    try:
        words = shlex.split(args)
    except ValueError:
        raise UserInputError("Unbalanced quotes.", usage=USAGE) from None
    positional: list[str] = []
    since, container, previous, pod = DEFAULT_SINCE, "", False, ""
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("--since", "--container", "-c", "--pod"):
            if index + 1 >= len(words):
                raise UserInputError(f"`{word}` needs a value.", usage=USAGE)
            value = words[index + 1]
            if word == "--since":
                try:
                    since = parse_duration(value)
                except DurationError as exc:
                    raise UserInputError(str(exc), usage=USAGE) from None
                if since > MAX_SINCE:
                    raise UserInputError("Ask for one day at most.", usage=USAGE)
            elif word == "--pod":
                pod = value
            else:
                container = value
            index += 2
            continue
        if word in ("--previous", "-p"):
            previous = True
        elif word.startswith("-"):
            raise UserInputError(f"Unknown flag `{escape(word)}`.", usage=USAGE)
        else:
            positional.append(word.lower())
        index += 1
    if len(positional) != 2:
        raise UserInputError(
            "Name a service and an environment, like `checkout prod`.", usage=USAGE
        )
    service, environment = positional
    entry = catalog.service(service)
    if entry is None:
        raise NotFound(f"There is no service called `{escape(service)}`.", usage=USAGE)
    workload = entry.workloads.get(environment)
    if workload is None:
        where = ", ".join(entry.workloads) or "nowhere yet"
        raise NotFound(
            f"{service} does not run in `{escape(environment)}` (it runs in {where}).", usage=USAGE
        )
    return Target(service, environment, workload, since, container, previous, pod)
