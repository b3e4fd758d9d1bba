"""Rollback, the on-call's first move: faithful to `kubectl rollout undo`, confirmed, recorded,
followed to the end in one message, and allowed during a freeze.

The rollout runs as a durable operation keyed by the confirmation, so a double click, a Slack
retry or a restart never rolls back twice, and one rollout per service and environment is
enforced by the deploy record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commands.deploy.gitops import CommitRequest, GitOpsDelivery
from commands.deploy.history import version_of
from commands.deploy.parse import RollbackRequest, parse_version
from commands.deploy.runner import Change, RolloutRunner, workload_of
from core.auth import Action, Actor, Authorizer, Target
from core.block_limits import escape
from core.catalog import Catalog, Workload
from core.clock import Clock
from core.errors import ForgebotError, NotAuthorized, UserInputError
from core.operations import OperationRunner
from integrations.kubernetes.gateway import KubeGateway
from storage import deployments as repo
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
    revert_of: str = ""
    """GitOps delivery: the commit the rollback reverts (`to_revision` is then 0)."""
    desired_state: str = ""
    """GitOps delivery: the field's value in Git when planned (the revert expects it still)."""


@dataclass
class RollbackService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    operations: OperationRunner
    kube: KubeGateway
    rollouts: RolloutRunner
    gitops: GitOpsDelivery | None = None

    def register_operations(self) -> None:
        self.operations.register(ROLLBACK, self.execute, self.rollouts.failed)

    def _workload(self, service: str, environment: str) -> Workload:
        return workload_of(self.catalog, service, environment)

    async def plan(self, actor: Actor, request: RollbackRequest) -> RollbackPlan:
        # What does not exist is "not found" for everyone, before any permission question.
        workload = self._workload(request.service, request.environment)
        decision = self.auth.authorize(actor, Action.ROLLBACK, Target(service=request.service))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ROLLBACK))
        if workload.gitops is not None and self.gitops is not None:
            return await self._plan_revert(request)
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

    async def _plan_revert(self, request: RollbackRequest) -> RollbackPlan:
        """GitOps: revert the newest commit forgebot pushed for the service there."""
        assert self.gitops is not None
        workload = self._workload(request.service, request.environment)
        target = workload.gitops
        assert target is not None
        if request.revision:
            raise UserInputError(
                f"{request.service} in {request.environment} is delivered through Git: a "
                "rollback reverts the last deploy's commit. Leave out `to REVISION`."
            )
        last = await self.db.run(
            lambda s: repo.last_committed(s, request.service, request.environment)
        )
        if last is None or not last.desired_state_commit or not last.previous_version:
            raise UserInputError(
                f"forgebot has pushed no commit for {request.service} in {request.environment} "
                "to revert: revert it in the repository."
            )
        value, _ = await self.gitops.current(target)
        return RollbackPlan(
            request.service,
            request.environment,
            self.gitops.version_in(target, value),
            last.previous_version,
            0,
            revert_of=last.desired_state_commit,
            desired_state=value,
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
            delivery="gitops" if plan.revert_of else "direct",
        )
        return await self.rollouts.begin(
            ROLLBACK,
            record,
            change,
            channel,
            key,
            revision=plan.to_revision,
            revert_of=plan.revert_of,
            desired_state=plan.desired_state,
        )

    async def execute(self, operation: Operation) -> dict[str, Any]:
        payload = operation.payload
        change = Change(**payload["change"])
        revision = int(payload["revision"])
        workload = self._workload(change.service, change.environment)
        if change.delivery == "gitops":
            await self._revert(operation, workload)
            return {"reverted": payload.get("revert_of", "")}

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

    async def _revert(self, operation: Operation, workload: Workload) -> None:
        payload = operation.payload
        change = Change(**payload["change"])
        entry = self.catalog.service(change.service)
        target = workload.gitops
        if self.gitops is None or target is None or entry is None:
            raise ForgebotError(f"{change.service} is no longer delivered through Git")
        gitops = self.gitops
        image = parse_version(change.to_version).image(entry.image)
        reverted = str(payload.get("revert_of") or "")
        request = CommitRequest(
            subject=f'Revert "Deploy {change.service} {change.from_version} to '
            f'{change.environment}"',
            value=gitops.value_for(target, image, change.to_version),
            expect=str(payload.get("desired_state") or "") or None,
            requester=change.actor,
            slack_channel=str(payload["channel"]),
            slack_ts=str(payload["ts"]),
            idempotency_key=operation.idempotency_key or f"operation-{operation.id}",
            body=f"This reverts commit {reverted}.",
        )
        await self.rollouts.execute(
            payload, lambda: gitops.apply(payload, workload, target, request, self.rollouts.notify)
        )

    @staticmethod
    def _version(workload: Workload, images: dict[str, str]) -> str:
        return version_of(images.get(workload.container, next(iter(images.values()), "")))
