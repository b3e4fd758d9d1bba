"""Deploy freezes: set in Slack by on-call or the platform team, or scheduled in the catalog.

A freeze always wins over an allow: `frozen()` is the one answer the deploy gate asks for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from commands.deploy.freeze_calendar import UpcomingWindow, upcoming_windows
from commands.deploy.parse import FreezeRequest
from core.auth import Action, Actor, Authorizer, Target
from core.catalog import Catalog, FreezeWindow
from core.clock import Clock
from core.errors import NotAuthorized, NotFound
from core.schedule import weekly_minute as _weekly_minute
from storage import deployments as repo
from storage.db import Database
from storage.models import Freeze


@dataclass(frozen=True)
class FreezeState:
    environment: str
    reason: str
    by: str
    until: datetime | None
    scheduled: bool
    service: str = ""
    """The one service frozen; "" for the whole environment."""


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

    def upcoming(self) -> list[UpcomingWindow]:
        """The catalog's freeze windows starting within the next two weeks, soonest first."""
        return upcoming_windows(self.catalog, self.clock.now())

    def _environment(self, name: str) -> str:
        if self.catalog.environment(name) is None:
            known = ", ".join(e.name for e in self.catalog.environments)
            raise NotFound(f"There is no environment called {name}. Known: {known}.")
        return name

    def check_may_freeze(self, actor: Actor, environment: str, service: str = "") -> str:
        """The environment's name if `actor` may freeze it (or `service` in it); else raises."""
        environment = self._environment(environment)
        if service and self.catalog.service(service) is None:
            raise NotFound(f"There is no service called {service}.")
        target = Target(service=service) if service else Target()
        decision = self.auth.authorize(actor, Action.FREEZE, target)
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.FREEZE))
        return environment

    async def frozen(self, environment: str, service: str | None = None) -> FreezeState | None:
        """The freeze a deploy of `service` (or of everything) to `environment` meets."""
        now = self.clock.now()
        manual = await self.db.run(lambda s: repo.active_freeze(s, environment, now, service))
        if manual is not None:
            return _state(manual)
        env = self.catalog.environment(environment)
        for window in env.freeze_windows if env else []:
            ends = window_covers(window, now)
            if ends is not None:
                return FreezeState(
                    environment, window.reason or window.name, "the catalog", ends, scheduled=True
                )
        return None

    async def freeze(self, actor: Actor, request: FreezeRequest) -> FreezeState:
        environment = self.check_may_freeze(actor, request.environment, request.service)
        now = self.clock.now()
        ends = now + request.duration if request.duration else None
        row = Freeze(
            environment=environment,
            service=request.service,
            reason=request.reason,
            created_by=actor.user_id,
            created_at=now,
            ends_at=ends,
        )
        await self.db.run(lambda s: repo.add_freeze(s, row))
        return _state(row)

    async def unfreeze(self, actor: Actor, environment: str) -> int:
        environment = self._environment(environment)
        decision = self.auth.authorize(actor, Action.FREEZE)
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.FREEZE))
        now = self.clock.now()
        return await self.db.run(lambda s: repo.lift_freezes(s, environment, now, actor.user_id))

    async def status(self) -> list[FreezeState]:
        """Every freeze in force: set in Slack (per environment or per service) or scheduled."""
        now = self.clock.now()
        manual = [_state(f) for f in await self.db.run(lambda s: repo.active_freezes(s, now))]
        whole = {s.environment for s in manual if not s.service}
        scheduled = [await self.frozen(e.name) for e in self.catalog.environments]
        return manual + [s for s in scheduled if s is not None and s.environment not in whole]


def _state(row: Freeze) -> FreezeState:
    return FreezeState(
        row.environment,
        row.reason,
        row.created_by,
        row.ends_at,
        scheduled=False,
        service=row.service,
    )
