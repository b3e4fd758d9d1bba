"""`/forge dora`: which services a request is about, and their DORA report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.auth import Actor, Authorizer
from bot.catalog import Catalog
from bot.clock import Clock
from bot.durations import DurationError, parse_duration
from bot.errors import NotFound, UserInputError
from commands.dora.metrics import DoraReport, report
from integrations.slack.blockkit import escape
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
            except DurationError:
                pass
        if len(words) > 1:
            raise UserInputError("Name one service or team.", usage=USAGE)
        if period > timedelta(days=366):
            raise UserInputError("Ask for a year at most.", usage=USAGE)
        if not words:
            team = self.auth.primary_team(actor.user_id)
            if team is None:
                raise UserInputError(
                    "You are in no team in the catalog; name a service or team.", usage=USAGE
                )
            words = [team.name]
        name = words[0].lower()
        if self.catalog.service(name) is not None:
            return DoraQuery(name, [name], period)
        if self.catalog.team(name) is not None:
            services = [s.name for s in self.catalog.services if s.team == name]
            return DoraQuery(f"team {name}", services, period)
        raise NotFound(f"There is no service or team called `{escape(name)}`.", usage=USAGE)

    async def report(self, query: DoraQuery) -> DoraReport:
        until = self.clock.now()
        since = until - query.period
        figures = await self.db.run(lambda s: repo.dora(s, query.services, since, until))
        return report(query.scope, figures)
