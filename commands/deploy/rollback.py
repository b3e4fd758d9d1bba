"""Rollback, the on-call's first move: faithful to `kubectl rollout undo`, confirmed, recorded,
followed to the end in one message, and allowed during a freeze.

The confirmation is durable before any slow work (the handler writes its request row first),
and the rollout runs as a durable operation (payload: `RolloutOrder`) keyed by the
confirmation, so a double click, a Slack retry or a restart never rolls back twice, and one
rollout per service and environment is enforced by the deploy record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commands.deploy.gitops import CommitRequest, GitOpsDelivery
from commands.deploy.history import version_of
from commands.deploy.parse import ROLLBACK_USAGE, RollbackRequest, parse_version
from commands.deploy.runner import Change, RolloutOrder, RolloutRunner
from commands.deploy.workloads import workload
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

    async def confirm(self, actor: Actor, request: RollbackRequest, channel: str, key: str) -> bool:
        """The person's "Roll back now": plan (the cluster may have moved since the question)
        and start; False when this confirmation was already acted on."""
        return await self.start(actor, await self.plan(actor, request), channel, key)

    async def plan(self, actor: Actor, request: RollbackRequest) -> RollbackPlan:
        # What does not exist is "not found" for everyone, before any permission question.
        placed = workload(
            self.catalog, request.service, request.environment, usage=ROLLBACK_USAGE
        ).workload
        decision = self.auth.authorize(actor, Action.ROLLBACK, Target(service=request.service))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ROLLBACK))
        if placed.gitops is not None and self.gitops is not None:
            return await self._plan_revert(request, placed)
        revisions = await self.kube.revisions(placed.cluster, placed.namespace, placed.deployment)
        if request.version is not None:
            ran = [r for r in revisions if self._version(placed, r.images) == request.version]
            if not ran:
                known = ", ".join(
                    f"{r.number} ({self._version(placed, r.images)})" for r in revisions
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
            self._version(placed, current.images),
            self._version(placed, target.images),
            target.number,
        )

    async def _plan_revert(self, request: RollbackRequest, placed: Workload) -> RollbackPlan:
        """GitOps: revert the newest commit forgebot pushed for the service there."""
        assert self.gitops is not None
        target = placed.gitops
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
        service = workload(self.catalog, plan.service, plan.environment).service
        record = DeploymentRecord(
            service=plan.service,
            team=service.team,
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
        """The rollback operation's one handler: read its order, find the workload, act."""
        order = RolloutOrder.of(operation)
        change = order.change
        placed = workload(self.catalog, change.service, change.environment)
        where = placed.workload
        if change.delivery == "gitops":
            target, gitops = where.gitops, self.gitops
            if gitops is None or target is None:
                raise ForgebotError(f"{change.service} is no longer delivered through Git")
            image = parse_version(change.to_version).image(placed.service.image)
            commit = CommitRequest(
                subject=f'Revert "Deploy {change.service} {change.from_version} to '
                f'{change.environment}"',
                value=gitops.value_for(target, image, change.to_version),
                expect=order.desired_state or None,
                requester=change.actor,
                slack_channel=order.channel,
                slack_ts=order.ts,
                idempotency_key=operation.idempotency_key or f"operation-{operation.id}",
                body=f"This reverts commit {order.revert_of}.",
            )
            await self.rollouts.execute(
                order,
                where,
                lambda: gitops.apply(order, where, target, commit, self.rollouts.notify),
            )
            return {"reverted": order.revert_of}

        async def undo() -> None:
            # Resumed after a restart that came after the patch: the target revision has
            # become the newest one (rollout undo renumbers it), so there is nothing to patch.
            revisions = await self.kube.revisions(where.cluster, where.namespace, where.deployment)
            if revisions and self._version(where, revisions[0].images) == change.to_version:
                return
            await self.kube.rollback(
                where.cluster, where.namespace, where.deployment, order.revision
            )

        await self.rollouts.execute(order, where, undo)
        return {"revision": order.revision}

    @staticmethod
    def _version(workload: Workload, images: dict[str, str]) -> str:
        return version_of(images.get(workload.container, next(iter(images.values()), "")))
