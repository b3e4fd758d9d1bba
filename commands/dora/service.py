"""`/forge dora`: which services a request is about, and their DORA report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.auth import Actor, Authorizer
from bot.catalog import Catalog
from bot.clock import Clock
from bot.durations import DurationError, parse_duration
from bot.errors import UserInputError
from bot.scopes import service_or_team
from commands.dora.metrics import DoraReport, report
from storage import deployments as repo
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
            except DurationError as exc:
                # "5x" after a name is a period gone wrong, not a second name.
                if len(words) > 1 or words[-1][:1].isdigit():
                    raise UserInputError(f"{exc}.", usage=USAGE) from None
        if period > timedelta(days=366):
            raise UserInputError("Ask for a year at most.", usage=USAGE)
        scope = service_or_team(self.catalog, self.auth, actor, words, USAGE)
        return DoraQuery(scope.title, scope.services, period)

    async def report(self, query: DoraQuery) -> DoraReport:
        until = self.clock.now()
        since = until - query.period
        figures = await self.db.run(lambda s: repo.dora(s, query.services, since, until))
        return report(query.scope, figures)
