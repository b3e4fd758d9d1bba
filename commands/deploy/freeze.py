"""Deploy freezes: set in Slack by on-call or the platform team, or scheduled in the catalog.

A freeze always wins over an allow: `frozen()` is the one answer the deploy gate asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from commands.deploy.parse import FreezeRequest
from core.auth import Action, Actor, Authorizer
from core.catalog import Catalog, FreezeWindow
from core.clock import Clock
from core.errors import NotAuthorized, NotFound
from storage import deployments as repo
from storage.db import Database
from storage.models import Freeze

_WEEKLY = re.compile(r"(mon|tue|wed|thu|fri|sat|sun)\w*\s+(\d{2}):(\d{2})", re.IGNORECASE)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class FreezeState:
    environment: str
    reason: str
    by: str
    until: datetime | None
    scheduled: bool


def _weekly_minute(text: str) -> int | None:
    match = _WEEKLY.fullmatch(text.strip())
    if match is None:
        return None
    return (
        _DAYS.index(match.group(1).lower()[:3]) * 1440
        + int(match.group(2)) * 60
        + int(match.group(3))
    )


def window_covers(window: FreezeWindow, now: datetime) -> datetime | None:
    """When the window ends if it covers `now` (in its own time zone), else None. Windows are
    one-off (`2026-12-23T00:00`) or weekly (`Fri 16:00` to `Mon 08:00`)."""
    zone = ZoneInfo(window.timezone)
    local = now.astimezone(zone)
    start_week, end_week = _weekly_minute(window.start), _weekly_minute(window.end)
    if start_week is not None and end_week is not None:
        minute = local.weekday() * 1440 + local.hour * 60 + local.minute
        span = (end_week - start_week) % (7 * 1440)
        into = (minute - start_week) % (7 * 1440)
        if into < span:
            return (local + timedelta(minutes=span - into)).replace(second=0, microsecond=0)
        return None
    start = datetime.fromisoformat(window.start).replace(tzinfo=zone)
    end = datetime.fromisoformat(window.end).replace(tzinfo=zone)
    return end if start <= local < end else None


@dataclass
class FreezeService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer

    def _environment(self, name: str) -> str:
        if self.catalog.environment(name) is None:
            known = ", ".join(e.name for e in self.catalog.environments)
            raise NotFound(f"There is no environment called {name}. Known: {known}.")
        return name

    async def frozen(self, environment: str) -> FreezeState | None:
        now = self.clock.now()
        manual = await self.db.run(lambda s: repo.active_freeze(s, environment, now))
        if manual is not None:
            return FreezeState(
                environment, manual.reason, manual.created_by, manual.ends_at, scheduled=False
            )
        env = self.catalog.environment(environment)
        for window in env.freeze_windows if env else []:
            ends = window_covers(window, now)
            if ends is not None:
                return FreezeState(
                    environment, window.reason or window.name, "the catalog", ends, scheduled=True
                )
        return None

    async def freeze(self, actor: Actor, request: FreezeRequest) -> FreezeState:
        environment = self._environment(request.environment)
        decision = self.auth.authorize(actor, Action.FREEZE)
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.FREEZE))
        now = self.clock.now()
        ends = now + request.duration if request.duration else None
        row = Freeze(
            environment=environment,
            reason=request.reason,
            created_by=actor.user_id,
            created_at=now,
            ends_at=ends,
        )
        await self.db.run(lambda s: repo.add_freeze(s, row))
        return FreezeState(environment, request.reason, actor.user_id, ends, scheduled=False)

    async def unfreeze(self, actor: Actor, environment: str) -> int:
        environment = self._environment(environment)
        decision = self.auth.authorize(actor, Action.FREEZE)
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.FREEZE))
        now = self.clock.now()
        return await self.db.run(lambda s: repo.lift_freezes(s, environment, now, actor.user_id))

    async def status(self) -> list[FreezeState]:
        states = [await self.frozen(e.name) for e in self.catalog.environments]
        return [s for s in states if s is not None]
