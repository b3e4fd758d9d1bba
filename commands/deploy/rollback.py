"""Rollback, the on-call's first move: faithful to `kubectl rollout undo`, confirmed, recorded,
followed to the end in one message, and allowed during a freeze.

The rollout runs as a durable operation keyed by the confirmation, so a double click, a Slack
retry or a restart never rolls back twice, and one rollout per service and environment is
enforced by the deploy record.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from bot.auth import Action, Actor, Authorizer, Target
from bot.catalog import Catalog, Workload
from bot.clock import Clock
from bot.errors import Conflict, ForgebotError, NotAuthorized, NotFound, UserInputError
from bot.operations import OperationRunner
from commands.deploy.history import version_of
from commands.deploy.parse import RollbackRequest
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.rollout import RolloutStatus
from storage import deployments as repo
from storage.db import Database
from storage.models import DeployKind, DeploymentRecord, DeployOutcome, Operation

ROLLBACK = "deploy.rollback"


@dataclass(frozen=True)
class RollbackPlan:
    service: str
    environment: str
    from_version: str
    to_version: str
    to_revision: int


class RolloutNotifier(Protocol):
    async def started(self, plan: RollbackPlan, actor: str, channel: str) -> tuple[str, str]: ...

    async def progress(
        self, channel: str, ts: str, plan: RollbackPlan, status: RolloutStatus, elapsed: float
    ) -> None: ...

    async def finished(
        self,
        channel: str,
        ts: str,
        plan: RollbackPlan,
        status: RolloutStatus,
        elapsed: float,
        team_channel: str,
    ) -> None: ...


@dataclass
class RollbackService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    operations: OperationRunner
    kube: KubeGateway
    notify: RolloutNotifier
    poll_seconds: float = 1.0
    timeout_seconds: float = 600.0

    def register_operations(self) -> None:
        self.operations.register(ROLLBACK, self.execute)

    def _workload(self, service: str, environment: str) -> Workload:
        entry = self.catalog.service(service)
        if entry is None:
            raise NotFound(f"There is no service called {service}.")
        if environment not in entry.workloads:
            raise NotFound(f"{service} does not run in {environment}.")
        return entry.workloads[environment]

    async def plan(self, actor: Actor, request: RollbackRequest) -> RollbackPlan:
        decision = self.auth.authorize(actor, Action.ROLLBACK, Target(service=request.service))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ROLLBACK))
        workload = self._workload(request.service, request.environment)
        revisions = await self.kube.revisions(
            workload.cluster, workload.namespace, workload.deployment
        )
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

        def version(images: dict[str, str]) -> str:
            return version_of(images.get(workload.container, next(iter(images.values()), "")))

        return RollbackPlan(
            request.service,
            request.environment,
            version(current.images),
            version(target.images),
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
        try:
            record = await self.db.run(lambda s: repo.start(s, record))
        except repo.RolloutInProgress as exc:
            running = exc.existing
            detail = f" ({running.version} by <@{running.actor}>)" if running else ""
            raise Conflict(
                f"A rollout of {plan.service} in {plan.environment} is already in progress{detail}."
            ) from None
        channel_ts = await self.notify.started(plan, actor.user_id, channel)
        submission = await self.operations.submit(
            ROLLBACK,
            {
                "deployment_id": record.id,
                "plan": plan.__dict__,
                "channel": channel_ts[0],
                "ts": channel_ts[1],
            },
            idempotency_key=key,
            actor_user_id=actor.user_id,
        )
        return submission.created

    async def execute(self, operation: Operation) -> dict[str, Any]:
        payload = operation.payload
        plan = RollbackPlan(**payload["plan"])
        deployment_id = int(payload["deployment_id"])
        workload = self._workload(plan.service, plan.environment)
        entry = self.catalog.service(plan.service)
        team = self.catalog.team(entry.team) if entry else None
        channel, ts = str(payload["channel"]), str(payload["ts"])
        started = self.clock.now()
        try:
            await self.kube.rollback(
                workload.cluster, workload.namespace, workload.deployment, plan.to_revision
            )
            status = await self._follow(workload, plan, channel, ts)
        except ForgebotError as exc:
            status = RolloutStatus(0, 0, 0, 0, False, True, str(exc))
        elapsed = (self.clock.now() - started).total_seconds()
        outcome = DeployOutcome.SUCCEEDED if status.done else DeployOutcome.FAILED
        now = self.clock.now()
        await self.db.run(
            lambda s: repo.finish(
                s, deployment_id, outcome=outcome, now=now, failure_reason=status.reason
            )
        )
        await self.notify.finished(
            channel, ts, plan, status, elapsed, team.channel if team else channel
        )
        if not status.done:
            raise ForgebotError(
                f"the rollback of {plan.service} in {plan.environment} failed: {status.reason}"
            )
        return {"revision": plan.to_revision, "seconds": round(elapsed, 1)}

    async def _follow(
        self, workload: Workload, plan: RollbackPlan, channel: str, ts: str
    ) -> RolloutStatus:
        started = self.clock.now()
        while True:
            status = await self.kube.rollout_status(
                workload.cluster, workload.namespace, workload.deployment
            )
            elapsed = (self.clock.now() - started).total_seconds()
            await self.notify.progress(channel, ts, plan, status, elapsed)
            if status.done or status.failed:
                return status
            if elapsed >= self.timeout_seconds:
                return RolloutStatus(
                    status.replicas,
                    status.updated,
                    status.ready,
                    status.available,
                    False,
                    True,
                    f"not ready after {int(self.timeout_seconds)} s",
                )
            await asyncio.sleep(self.poll_seconds)
