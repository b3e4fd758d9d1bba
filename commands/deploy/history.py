"""`/forge history SERVICE ENV`: revisions as the cluster knows them, with who deployed each
(from the deploy record, where forgebot or CI/CD recorded it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from commands.deploy.parse import NAME
from core.block_limits import escape
from core.catalog import Catalog
from core.errors import NotFound, UserInputError
from integrations.kubernetes.gateway import KubeGateway
from storage import deployments as repo
from storage.db import Database

if TYPE_CHECKING:  # the GitOps delivery imports this module's `version_of`
    from commands.deploy.gitops import GitOpsDelivery
    from core.catalog_gitops import GitOpsTarget
    from integrations.git.repository import CommitInfo

USAGE = "`/forge history SERVICE ENV`"


@dataclass(frozen=True)
class HistoryLine:
    revision: int
    version: str
    created: datetime | None
    deployed_by: str
    current: bool


def version_of(image: str) -> str:
    if "@" in image:
        return image.rsplit("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


@dataclass
class HistoryService:
    catalog: Catalog
    db: Database
    kube: KubeGateway
    gitops: GitOpsDelivery | None = None

    async def commits(
        self, service: str, environment: str
    ) -> tuple[GitOpsTarget, list[CommitInfo]] | None:
        """GitOps delivery: the commits that changed the service's desired-state file, newest
        first (None when the service is deployed directly there)."""
        found = self.gitops.target(service, environment) if self.gitops else None
        if found is None or self.gitops is None:
            return None
        _, target = found
        return target, await self.gitops.history(target)

    def parse(self, args: str) -> tuple[str, str]:
        words = args.lower().split()
        if len(words) != 2 or not all(NAME.fullmatch(w) for w in words):
            raise UserInputError(
                "Name a service and an environment, like `checkout prod`.", usage=USAGE
            )
        service, environment = words
        entry = self.catalog.service(service)
        if entry is None:
            raise NotFound(f"There is no service called `{escape(service)}`.", usage=USAGE)
        if environment not in entry.workloads:
            where = ", ".join(entry.workloads) or "nowhere yet"
            raise NotFound(
                f"{service} does not run in `{escape(environment)}` (it runs in {where}).",
                usage=USAGE,
            )
        return service, environment

    async def history(self, service: str, environment: str) -> list[HistoryLine]:
        entry = self.catalog.service(service)
        assert entry is not None
        workload = entry.workloads[environment]
        revisions = await self.kube.revisions(
            workload.cluster, workload.namespace, workload.deployment
        )
        records = await self.db.run(lambda s: repo.history(s, service, environment, limit=200))
        by_version: dict[str, str] = {}
        for record in reversed(records):  # oldest first, so the newest deploy of a version wins
            by_version[record.version] = record.actor
        lines = []
        for index, revision in enumerate(revisions):
            version = version_of(
                revision.images.get(workload.container, next(iter(revision.images.values()), ""))
            )
            lines.append(
                HistoryLine(
                    revision.number,
                    version,
                    revision.created,
                    by_version.get(version, ""),
                    index == 0,
                )
            )
        return lines
