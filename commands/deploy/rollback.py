"""Rollback, the on-call's first move: faithful to `kubectl rollout undo`, confirmed, recorded,
followed to the end in one message, and allowed during a freeze.

The rollout runs as a durable operation keyed by the confirmation, so a double click, a Slack
retry or a restart never rolls back twice, and one rollout per service and environment is
enforced by the deploy record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.auth import Action, Actor, Authorizer, Target
from bot.catalog import Catalog, Workload
from bot.clock import Clock
from bot.errors import NotAuthorized, UserInputError
from bot.operations import OperationRunner
from commands.deploy.history import version_of
from commands.deploy.parse import RollbackRequest
from commands.deploy.rollout import Change, RolloutRunner, workload_of
from integrations.kubernetes.gateway import KubeGateway
from integrations.slack.blockkit import escape
from storage.db import Database
from storage.models import DeployKind, DeploymentRecord, Operation

ROLLBACK = "deploy.rollback"


@dataclass(frozen=True)
class RollbackPlan:
    service: str
    environment: str
    from_version: str
    to_version: str
    to_revision: int


@dataclass
class RollbackService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    operations: OperationRunner
    kube: KubeGateway
    rollouts: RolloutRunner

    def register_operations(self) -> None:
        self.operations.register(ROLLBACK, self.execute)

    def _workload(self, service: str, environment: str) -> Workload:
        return workload_of(self.catalog, service, environment)

    async def plan(self, actor: Actor, request: RollbackRequest) -> RollbackPlan:
        # What does not exist is "not found" for everyone, before any permission question.
        workload = self._workload(request.service, request.environment)
        decision = self.auth.authorize(actor, Action.ROLLBACK, Target(service=request.service))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ROLLBACK))
        revisions = await self.kube.revisions(
            workload.cluster, workload.namespace, workload.deployment
        )
        if request.version is not None:
            ran = [r for r in revisions if self._version(workload, r.images) == request.version]
            if not ran:
                known = ", ".join(
                    f"{r.number} ({self._version(workload, r.images)})" for r in revisions
                )
                raise UserInputError(
                    f"`{escape(request.version)}` is not a revision number, nor a version "
                    f"{request.service} ran in {request.environment}; known revisions: {known}."
                )
            request = RollbackRequest(request.service, request.environment, ran[0].number)
        if len(revisions) < 2 and request.revision is None:
            raise UserInputError(
                f"{request.service} in {request.environment} has no previous revision to roll back to."
            )
        current = revisions[0]
        if request.revision is None:
            target = revisions[1]
        else:
            found = [r for r in revisions if r.number == request.revision]
            if not found:
                known = ", ".join(str(r.number) for r in revisions)
                raise UserInputError(
                    f"There is no revision {request.revision}; known revisions: {known}."
                )
            target = found[0]
            if target.number == current.number:
                raise UserInputError(f"Revision {target.number} is the one running now.")

        return RollbackPlan(
            request.service,
            request.environment,
            self._version(workload, current.images),
            self._version(workload, target.images),
            target.number,
        )

    async def start(self, actor: Actor, plan: RollbackPlan, channel: str, key: str) -> bool:
        """Record and launch; False when this confirmation was already acted on."""
        decision = self.auth.authorize(actor, Action.ROLLBACK, Target(service=plan.service))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ROLLBACK))
        entry = self.catalog.service(plan.service)
        assert entry is not None
        record = DeploymentRecord(
            service=plan.service,
            team=entry.team,
            environment=plan.environment,
            kind=DeployKind.ROLLBACK,
            version=plan.to_version,
            previous_version=plan.from_version,
            actor=actor.user_id,
            started_at=self.clock.now(),
            revision=plan.to_revision,
        )
        change = Change(
            DeployKind.ROLLBACK,
            plan.service,
            plan.environment,
            plan.from_version,
            plan.to_version,
            actor.user_id,
        )
        return await self.rollouts.begin(
            ROLLBACK, record, change, channel, key, revision=plan.to_revision
        )

    async def execute(self, operation: Operation) -> dict[str, Any]:
        payload = operation.payload
        change = Change(**payload["change"])
        revision = int(payload["revision"])
        workload = self._workload(change.service, change.environment)

        async def undo() -> None:
            # Resumed after a restart that came after the patch: the target revision has
            # become the newest one (rollout undo renumbers it), so there is nothing to patch.
            revisions = await self.kube.revisions(
                workload.cluster, workload.namespace, workload.deployment
            )
            if revisions and self._version(workload, revisions[0].images) == change.to_version:
                return
            await self.kube.rollback(
                workload.cluster, workload.namespace, workload.deployment, revision
            )

        await self.rollouts.execute(payload, undo)
        return {"revision": revision}

    @staticmethod
    def _version(workload: Workload, images: dict[str, str]) -> str:
        return version_of(images.get(workload.container, next(iter(images.values()), "")))
