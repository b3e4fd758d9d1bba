"""`/forge dora`: which services a request is about, and their DORA report."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from bot.auth import Actor, Authorizer
from bot.catalog import Catalog
from bot.clock import Clock
from bot.durations import DurationError, parse_duration
from bot.errors import UserInputError
from bot.scopes import service_or_team
from commands.dora.metrics import DoraReport, report
from storage import deployments as repo
from storage import incidents
from storage.db import Database

USAGE = "`/forge dora [SERVICE|TEAM] [30d]`"


@dataclass(frozen=True)
class DoraQuery:
    scope: str
    services: list[str]
    period: timedelta


@dataclass
class DoraService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer

    def parse(self, actor: Actor, args: str) -> DoraQuery:
        words = args.split()
        period = timedelta(days=30)
        if words:
            try:
                period = parse_duration(words[-1])
                words = words[:-1]
            except DurationError:
                pass
        if period > timedelta(days=366):
            raise UserInputError("Ask for a year at most.", usage=USAGE)
        scope = service_or_team(self.catalog, self.auth, actor, words, USAGE)
        return DoraQuery(scope.title, scope.services, period)

    async def report(self, query: DoraQuery) -> DoraReport:
        until = self.clock.now()
        since = until - query.period
        figures = await self.db.run(lambda s: repo.dora(s, query.services, since, until))
        restored = await self.db.run(
            lambda s: incidents.resolved_between(s, query.services, since, until)
        )
        if restored:
            # Incidents are the direct record of service restored: they replace the estimate
            # from deploy failures whenever the window has any.
            durations = sorted(
                (i.resolved_at - i.impact_started_at).total_seconds()
                for i in restored
                if i.resolved_at is not None
            )
            figures = replace(
                figures,
                restore_median=timedelta(seconds=round(durations[len(durations) // 2])),
                restore_samples=len(durations),
            )
        return report(query.scope, figures)
