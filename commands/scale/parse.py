"""`SERVICE ENV REPLICAS [break-glass REASON]` to a typed request, with friendly errors."""

from __future__ import annotations

from dataclasses import dataclass

from core.block_limits import escape
from core.catalog import Catalog, Workload
from core.errors import NotFound, UserInputError

USAGE = "`/forge scale SERVICE ENV REPLICAS [break-glass REASON]`"
MAX_REPLICAS = 100
BREAK_GLASS = "break-glass"


@dataclass(frozen=True)
class ScaleRequest:
    service: str
    environment: str
    replicas: int
    workload: Workload
    reason: str = ""
    """Why a frozen environment is scaled anyway (break glass); "" otherwise."""


def parse_scale(args: str, catalog: Catalog) -> ScaleRequest:
    words = args.split()
    reason = ""
    if BREAK_GLASS in (w.lower() for w in words):
        at = [w.lower() for w in words].index(BREAK_GLASS)
        reason = " ".join(words[at + 1 :]).strip()
        words = words[:at]
        if not reason:
            raise UserInputError("Breaking glass needs a reason after `break-glass`.", usage=USAGE)
    if len(words) != 3:
        raise UserInputError(
            "Name a service, an environment and a replica count, like `checkout prod 5`.",
            usage=USAGE,
        )
    service, environment, count = words[0].lower(), words[1].lower(), words[2]
    if not count.isdigit() or int(count) > MAX_REPLICAS:
        raise UserInputError(
            f"`{escape(count)}` is not a replica count: use a whole number from 0 to "
            f"{MAX_REPLICAS}.",
            usage=USAGE,
        )
    entry = catalog.service(service)
    if entry is None:
        raise NotFound(f"There is no service called `{escape(service)}`.", usage=USAGE)
    workload = entry.workloads.get(environment)
    if workload is None:
        where = ", ".join(entry.workloads) or "nowhere yet"
        raise NotFound(
            f"{escape(service)} does not run in `{escape(environment)}` (it runs in {where}).",
            usage=USAGE,
        )
    return ScaleRequest(service, environment, int(count), workload, reason[:500])
