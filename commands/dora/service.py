"""`/forge dora`: which services, environments and period a request is about, and their
DORA report.

DORA measures delivery to production, so only the catalog's production environments count
by default (`production: true`, or tier `prod`); `env NAME` asks about another one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from commands.dora.metrics import DoraReport, report
from core.auth import Actor, Authorizer
from core.block_limits import escape
from core.catalog import Catalog
from core.clock import Clock
from core.durations import DurationError, parse_duration
from core.errors import NotFound, UserInputError
from core.scopes import service_or_team
from storage import deployments as repo
from storage import incidents
from storage.db import Database

USAGE = "`/forge dora [SERVICE|TEAM] [30d] [env ENV]`"


@dataclass(frozen=True)
class DoraQuery:
    scope: str
    services: list[str]
    period: timedelta
    environments: tuple[str, ...]
    production: bool
    """Whether `environments` are the production ones (the default) or one asked for."""


@dataclass
class DoraService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer

    def parse(self, actor: Actor, args: str) -> DoraQuery:
        words = args.split()
        environments = tuple(e.name for e in self.catalog.environments if e.is_production)
        production = True
        lowered = [w.lower() for w in words]
        if "env" in lowered:
            at = lowered.index("env")
            if at + 1 >= len(words):
                raise UserInputError("Name the environment after `env`.", usage=USAGE)
            name = lowered[at + 1]
            environment = self.catalog.environment(name)
            if environment is None:
                known = ", ".join(f"`{e.name}`" for e in self.catalog.environments)
                raise NotFound(
                    f"There is no environment called `{escape(name)}` (known: {known}).",
                    usage=USAGE,
                )
            environments, production = (environment.name,), environment.is_production
            words = words[:at] + words[at + 2 :]
        elif not environments:
            raise UserInputError(
                "No environment of the catalog is marked as production (`production: true` "
                "or tier `prod`), so name one with `env ENV`.",
                usage=USAGE,
            )
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
        return DoraQuery(scope.title, scope.services, period, environments, production)

    async def report(self, query: DoraQuery) -> DoraReport:
        until = self.clock.now()
        since = until - query.period
        figures = await self.db.run(
            lambda s: repo.dora(s, query.services, since, until, query.environments)
        )
        restored = await self.db.run(
            lambda s: incidents.resolved_between(s, query.services, since, until)
        )
        if restored:
            # Incidents are the direct record of service restored: they replace the estimate
            # from deploy failures whenever the window has any.
            restore_median, samples = repo.median(
                [
                    (i.resolved_at - i.impact_started_at).total_seconds()
                    for i in restored
                    if i.resolved_at is not None
                ]
            )
            figures = replace(figures, restore_median=restore_median, restore_samples=samples)
        return report(query.scope, figures, query.environments, production=query.production)
