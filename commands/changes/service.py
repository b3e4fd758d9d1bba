"""`/forge changes [SERVICE|TEAM] [PERIOD]`: which records a request covers, and its timeline.

Also what incident cards and alert messages show as "what changed" (`recent`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from commands.changes.timeline import ChangeEvent, build
from commands.deploy.history import HistoryService
from commands.deploy.parse import RollbackRequest
from core.auth import Actor, Authorizer
from core.catalog import Catalog
from core.clock import Clock
from core.durations import DurationError, parse_duration
from core.errors import NotFound, UserInputError
from core.scopes import service_or_team
from integrations.kubernetes.gateway import KubeGateway
from storage import changes as repo
from storage import deployments
from storage.db import Database
from storage.models import DeployKind

USAGE = "`/forge changes [SERVICE|TEAM] [PERIOD]`  (PERIOD like 6h, 2d; 24h by default)"
DEFAULT_PERIOD = timedelta(hours=24)
MAX_PERIOD = timedelta(days=31)


@dataclass(frozen=True)
class ChangesQuery:
    title: str
    services: list[str]
    period: timedelta


@dataclass(frozen=True)
class Timeline:
    title: str
    period: timedelta
    events: list[ChangeEvent]


@dataclass
class ChangesService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    kube: KubeGateway

    def parse(self, actor: Actor, args: str) -> ChangesQuery:
        words = args.split()
        period = DEFAULT_PERIOD
        if words:
            try:
                period = parse_duration(words[-1])
                words = words[:-1]
            except DurationError:
                if len(words) > 1:
                    raise UserInputError(
                        f"`{words[-1]}` is not a period: use a duration like 6h or 2d.",
                        usage=USAGE,
                    ) from None
        if period > MAX_PERIOD:
            raise UserInputError("Ask for 31 days at most.", usage=USAGE)
        scope = service_or_team(self.catalog, self.auth, actor, words, USAGE)
        return ChangesQuery(scope.title, scope.services, period)

    async def timeline(self, query: ChangesQuery) -> Timeline:
        return Timeline(query.title, query.period, await self.recent(query.services, query.period))

    async def recent(self, services: list[str], period: timedelta) -> list[ChangeEvent]:
        """The changes around these services in the last `period`, newest first."""
        until = self.clock.now() + timedelta(seconds=1)
        since = until - period
        entries = [e for e in (self.catalog.service(s) for s in services) if e is not None]
        environments = sorted({env for e in entries for env in e.workloads})
        teams = sorted({e.team for e in entries})
        records = await self.db.run(
            lambda s: repo.records(
                s,
                services=services,
                environments=environments,
                teams=teams,
                since=since,
                until=until,
            )
        )
        return build(records, since, until)

    async def rollback_of(self, deployment_id: int) -> RollbackRequest:
        """ "Roll back this": the revision that ran the version this deploy replaced."""
        record = await self.db.run(lambda s: deployments.get(s, deployment_id))
        if record is None or record.kind != DeployKind.DEPLOY.value:
            raise NotFound("That deploy is no longer in the record.")
        if not record.previous_version:
            raise UserInputError("forgebot does not know what ran before that deploy.")
        history = HistoryService(self.catalog, self.db, self.kube)
        lines = await history.history(record.service, record.environment)
        for line in lines:
            if line.version == record.previous_version and not line.current:
                return RollbackRequest(record.service, record.environment, line.revision)
        if any(line.current and line.version == record.previous_version for line in lines):
            raise UserInputError(
                f"{record.previous_version} is already running on {record.service} "
                f"in {record.environment}."
            )
        raise UserInputError(
            f"The cluster no longer keeps a revision of {record.service} running "
            f"{record.previous_version}; deploy it with `/deploy {record.service} "
            f"{record.previous_version} to {record.environment}`."
        )
