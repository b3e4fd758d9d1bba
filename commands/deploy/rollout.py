"""One rollout, deploy or rollback alike: change the Deployment, follow it to the end in one
Slack message, record the outcome, and tell the owning team.

Both kinds run as durable operations; `RolloutRunner.run` is what an operation executes, so it
is safe to run again after a restart: the change is idempotent (the same image or template
again starts no new rollout) and the record's outcome is a guarded transition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Protocol

from core.catalog import Catalog, Workload
from core.clock import Clock
from core.errors import Conflict, DependencyUnavailable, ForgebotError, NotFound
from core.operations import OperationRunner
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

    def payload(self) -> dict[str, Any]:
        return asdict(self)


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


class RolloutReader(Protocol):
    async def rollout_status(self, cluster: str, namespace: str, deployment: str) -> Any: ...


def workload_of(catalog: Catalog, service: str, environment: str) -> Workload:
    entry = catalog.service(service)
    if entry is None:
        raise NotFound(f"There is no service called {service}.")
    if environment not in entry.workloads:
        where = ", ".join(entry.workloads) or "nowhere yet"
        raise NotFound(f"{service} does not run in {environment} (it runs in {where}).")
    return entry.workloads[environment]


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
    kube: RolloutReader
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
        **payload: Any,
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
            submission = await self.operations.submit(
                operation_kind,
                {
                    "deployment_id": record.id,
                    "change": change.payload(),
                    "channel": channel,
                    "ts": ts,
                    **payload,
                },
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
        self, payload: dict[str, Any], act: Callable[[], Awaitable[object]]
    ) -> RolloutStatus:
        """Run the rollout an operation carries (see `begin`); a failed rollout fails the
        operation, so it is recorded as failed there too."""
        change = Change(**payload["change"])
        status = await self.run(
            int(payload["deployment_id"]), change, str(payload["channel"]), str(payload["ts"]), act
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
        workload: Workload | None = None,
    ) -> RolloutStatus:
        """Apply the change with `act`, follow it, record and announce the outcome. `workload`
        is where it runs when that is not in the catalog (a pull request's preview)."""
        workload = workload or workload_of(self.catalog, change.service, change.environment)
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
        started = self.clock.now()
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
            if elapsed >= self.timeout_seconds:
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
