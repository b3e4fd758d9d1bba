"""Runs one rollout, deploy or rollback alike: change the Deployment, follow it to the end in
one Slack message, record the outcome, and tell the owning team. (Reading a rollout's status
is `integrations.kubernetes.rollout`; this module runs them.)

Both kinds run as durable operations whose payload is a `RolloutOrder`; the capability's one
handler per kind reads the order, finds the workload once and hands both to `RolloutRunner.run`,
which is safe to run again after a restart: the change is idempotent (the same image or
template again starts no new rollout) and the record's outcome is a guarded transition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from core.catalog import Catalog, Workload
from core.clock import Clock
from core.errors import Conflict, DependencyUnavailable, ForgebotError
from core.operations import OperationRunner
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.rollout import RolloutStatus
from storage import deployments as repo
from storage import operations as operations_repo
from storage.db import Database
from storage.models import DeployKind, DeploymentRecord, DeployOutcome, Operation


@dataclass(frozen=True)
class Change:
    """What a rollout changes, as people read it; stored in the operation's payload."""

    kind: str  # a DeployKind value
    service: str
    environment: str
    from_version: str
    to_version: str
    actor: str
    hotfix: bool = False
    back_to_revision: int | None = None
    """The revision that ran before a deploy: what "Roll back now" returns to on failure."""
    delivery: str = "direct"
    """`gitops`: the change is a commit, followed through the controller (and rolled back by
    reverting the commit)."""

    @property
    def is_rollback(self) -> bool:
        return self.kind == DeployKind.ROLLBACK


class RolloutNotifier(Protocol):
    async def started(self, change: Change, channel: str) -> tuple[str, str]: ...

    async def progress(
        self, channel: str, ts: str, change: Change, status: RolloutStatus | None, elapsed: float
    ) -> None: ...

    async def finished(
        self,
        channel: str,
        ts: str,
        change: Change,
        status: RolloutStatus,
        elapsed: float,
        team_channel: str,
    ) -> None: ...


class RolloutOrder(BaseModel):
    """The payload of a deploy or rollback operation, validated once when the operation runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployment_id: int
    change: Change
    channel: str
    ts: str
    """The rollout's one Slack message."""
    image: str = ""
    """A deploy: the image to run."""
    revision: int = 0
    """A rollback: the Deployment revision to return to (0 for a GitOps revert)."""
    revert_of: str = ""
    """A GitOps rollback: the commit it reverts."""
    desired_state: str | None = None
    """GitOps delivery: the field's value in Git when planned (the commit expects it still)."""

    @classmethod
    def of(cls, operation: Operation) -> RolloutOrder:
        return cls.model_validate(operation.payload)


ROLLOUT_KINDS = ("deploy.rollout", "deploy.rollback")
"""The operation kinds that run a rollout record (`commands/deploy/service.py`, `rollback.py`)."""
log = logging.getLogger(__name__)

UNREACHABLE = "cluster unreachable, still trying"


@dataclass
class RolloutRunner:
    catalog: Catalog
    db: Database
    clock: Clock
    operations: OperationRunner
    kube: KubeGateway
    notify: RolloutNotifier
    poll_seconds: float = 1.0
    timeout_seconds: float = 600.0

    async def begin(
        self,
        operation_kind: str,
        record: DeploymentRecord,
        change: Change,
        channel: str,
        key: str,
        *,
        image: str = "",
        revision: int = 0,
        revert_of: str = "",
        desired_state: str | None = None,
    ) -> bool:
        """Record the rollout (one per service and environment, the database says), open its
        message and submit the operation that runs it. False when `key` was already used."""
        if await self.db.run(lambda s: operations_repo.by_key(s, key)) is not None:
            return False
        try:
            try:
                record = await self.db.run(lambda s: repo.start(s, record))
            except repo.RolloutInProgress as exc:
                if exc.existing is None or not await self.forget_orphan(
                    exc.existing, operation_kind
                ):
                    raise
                record = await self.db.run(lambda s: repo.start(s, record))
        except repo.RolloutInProgress as exc:
            running = exc.existing
            detail = f" ({running.version} by <@{running.actor}>)" if running else ""
            raise Conflict(
                f"A rollout of {change.service} in {change.environment} is already in "
                f"progress{detail}; wait for it to finish."
            ) from None
        try:
            channel, ts = await self.notify.started(change, channel)
            order = RolloutOrder(
                deployment_id=record.id or 0,
                change=change,
                channel=channel,
                ts=ts,
                image=image,
                revision=revision,
                revert_of=revert_of,
                desired_state=desired_state,
            )
            submission = await self.operations.submit(
                operation_kind,
                order.model_dump(mode="json"),
                idempotency_key=key,
                actor_user_id=change.actor,
            )
        except BaseException:
            # Nothing will run it: release the service+environment for the next attempt.
            deployment_id = record.id or 0
            now = self.clock.now()
            await self.db.run(
                lambda s: repo.finish(
                    s,
                    deployment_id,
                    outcome=DeployOutcome.FAILED,
                    now=now,
                    failure_reason="not started",
                )
            )
            raise
        if not submission.created:
            # A retry of an accepted request: the first one's record is the real one.
            deployment_id = record.id or 0
            await self.db.run(lambda s: repo.discard(s, deployment_id))
        return submission.created

    async def forget_orphan(
        self, running: repo.RunningRollout, operation_kind: str = ROLLOUT_KINDS[0]
    ) -> bool:
        """An in-progress record that no operation runs nor ever will: the process that wrote
        it died before submitting its operation (it had a whole lease to). It is forgotten,
        so the service is not held "in progress" for ever; True if it was."""
        now = self.clock.now()
        if (now - running.started_at).total_seconds() < self.operations.lease_seconds:
            return False  # its process may still be on its way to submitting it
        since = running.started_at - timedelta(minutes=1)
        if await self.db.run(
            lambda s: operations_repo.referencing(
                s, [operation_kind, *ROLLOUT_KINDS], "deployment_id", running.id, since
            )
        ):
            return False
        log.warning(
            "forgetting rollout record %s (%s): its process died before starting it",
            running.id,
            running.version,
        )
        await self.db.run(lambda s: repo.discard(s, running.id))
        return True

    async def failed(self, operation: Operation, reason: str) -> None:
        """The operation failed (a crash, its deadline, given up after restarts): close the
        deploy record if the rollout did not, so the service is not held "in progress"."""
        deployment_id = int(operation.payload.get("deployment_id") or 0)
        now = self.clock.now()
        await self.db.run(
            lambda s: repo.finish(
                s, deployment_id, outcome=DeployOutcome.FAILED, now=now, failure_reason=reason[:500]
            )
        )

    async def execute(
        self, order: RolloutOrder, workload: Workload, act: Callable[[], Awaitable[object]]
    ) -> RolloutStatus:
        """Run the rollout an operation carries (see `begin`); a failed rollout fails the
        operation, so it is recorded as failed there too."""
        change = order.change
        status = await self.run(
            order.deployment_id, change, order.channel, order.ts, act, workload=workload
        )
        if not status.done:
            what = "rollback" if change.is_rollback else "deploy"
            raise ForgebotError(
                f"the {what} of {change.service} {change.to_version} in {change.environment} "
                f"failed: {status.reason}"
            )
        return status

    async def run(
        self,
        deployment_id: int,
        change: Change,
        channel: str,
        ts: str,
        act: Callable[[], Awaitable[object]],
        *,
        workload: Workload,
    ) -> RolloutStatus:
        """Apply the change with `act`, follow it on `workload`, record and announce the
        outcome."""
        entry = self.catalog.service(change.service)
        team = self.catalog.team(entry.team) if entry else None
        started = self.clock.now()
        try:
            await act()
            status = await self._follow(workload, change, channel, ts)
        except ForgebotError as exc:
            status = RolloutStatus(0, 0, 0, 0, False, True, str(exc))
        elapsed = (self.clock.now() - started).total_seconds()
        outcome = DeployOutcome.SUCCEEDED if status.done else DeployOutcome.FAILED
        now = self.clock.now()
        await self.db.run(
            lambda s: repo.finish(
                s,
                deployment_id,
                outcome=outcome,
                now=now,
                failure_reason=status.reason,
                message_channel=channel,
                message_ts=ts,
            )
        )
        await self.notify.finished(
            channel, ts, change, status, elapsed, team.channel if team else channel
        )
        return status

    async def _follow(
        self, workload: Workload, change: Change, channel: str, ts: str
    ) -> RolloutStatus:
        """Poll until done, failed or timed out. An unreachable cluster is not a failed
        rollout: the rollout goes on without us, so keep asking until the timeout."""
        started = quiet_since = self.clock.now()
        last: RolloutStatus | None = None
        while True:
            elapsed = (self.clock.now() - started).total_seconds()
            try:
                status: RolloutStatus = await self.kube.rollout_status(
                    workload.cluster, workload.namespace, workload.deployment
                )
            except DependencyUnavailable:
                status = RolloutStatus(
                    *(
                        (last.replicas, last.updated, last.ready, last.available)
                        if last
                        else (0, 0, 0, 0)
                    ),
                    False,
                    False,
                    UNREACHABLE,
                )
            else:
                last = status
            await self.notify.progress(channel, ts, change, status, elapsed)
            if status.done or status.failed:
                return status
            if status.waiting:
                quiet_since = self.clock.now()  # a paused canary waits for people, not us
            if (self.clock.now() - quiet_since).total_seconds() >= self.timeout_seconds:
                reason = (
                    status.reason
                    if status.reason == UNREACHABLE
                    else f"{status.ready}/{status.replicas} ready"
                )
                return RolloutStatus(
                    status.replicas,
                    status.updated,
                    status.ready,
                    status.available,
                    False,
                    True,
                    f"not finished after {int(self.timeout_seconds)} s ({reason})",
                )
            await asyncio.sleep(self.poll_seconds)
