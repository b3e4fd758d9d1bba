"""Durable state changes: written as an operation row before they run, executed from the row.

`submit` inserts the row (`accepted`) under an idempotency key, so a Slack retry, a double
click or a second replica finds the existing row instead of acting twice. Execution moves the
row `accepted -> running -> succeeded|failed`.

The durability contract (docs/durability.md):

- **Owner and lease.** Each process has its own owner id (replica name plus a random suffix,
  so a restarted pod is a new owner). Running a row starts with a guarded claim that sets the
  owner and a lease (`lease_seconds`); a heartbeat renews the leases of the rows this process
  runs every `lease_seconds / 3`. A runner that finds its lease taken over, or could not renew
  it for a whole lease (the database unreachable: another replica may take over once it is
  back), cancels its handler: it stops acting.
- **Recovery** runs at start-up and then every `recovery_seconds` in every live process. It
  claims only rows whose lease has expired (or rows of its own it is not running), one
  guarded UPDATE each, so a starting replica never steals a live operation, and re-runs them;
  handlers are written to be re-run safely.
- **Deadline.** Each row has a deadline (per kind). Database writes inside a handler are
  retried with backoff while the database is down, until the deadline; a handler still running
  at its deadline is stopped and the operation fails. A row found past its deadline, or
  claimed `max_attempts` times, is failed rather than re-run.
- **The user is told.** A re-run handler updates its own Slack message as the first run would
  have; a failure the handler did not report itself (a crash, the deadline, giving up) is
  reported through the `announce` callback to the person who asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from core import faults
from core.clock import Clock
from core.errors import ForgebotError
from storage import operations as repo
from storage.db import Database, DatabaseUnavailable, retrying_until
from storage.models import Operation, OperationState

log = logging.getLogger(__name__)

OperationHandler = Callable[[Operation], Awaitable[dict[str, Any] | None]]
FailureListener = Callable[[Operation, str], Awaitable[None]]
Announcer = Callable[[Operation, str], Awaitable[None]]
"""Tells the person behind an operation that it failed, when its handler could not say so."""

T = TypeVar("T")

DEFAULT_DEADLINE = timedelta(minutes=30)
DEFAULT_LEASE_SECONDS = 30.0
MAX_ATTEMPTS = 5


def process_owner(replica: str | None = None) -> str:
    """This process's owner id: the replica (pod) name plus a per-process suffix."""
    name = replica or socket.gethostname()
    return f"{name}/{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Submission:
    operation: Operation
    created: bool


@dataclass(frozen=True)
class Accepted(Generic[T]):
    value: T | None
    duplicate: bool


@dataclass(frozen=True)
class _Kind:
    handler: OperationHandler
    on_failure: FailureListener | None
    deadline: timedelta


class OperationRunner:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        recovery_seconds: float | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.owner = owner or process_owner()
        self.lease_seconds = lease_seconds
        self.recovery_seconds = recovery_seconds or lease_seconds / 2
        self._kinds: dict[str, _Kind] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._renewed: dict[str, float] = {}
        self._lost: set[str] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.announce: Announcer | None = None

    # --- registration and submission ---------------------------------------------------------
    def register(
        self,
        kind: str,
        handler: OperationHandler,
        on_failure: FailureListener | None = None,
        *,
        deadline: timedelta = DEFAULT_DEADLINE,
    ) -> None:
        if kind in self._kinds:
            raise ValueError(f"operation kind {kind} registered twice")
        self._kinds[kind] = _Kind(handler, on_failure, deadline)

    @property
    def _handlers(self) -> dict[str, OperationHandler]:
        return {kind: entry.handler for kind, entry in self._kinds.items()}

    async def submit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str,
        actor_user_id: str = "",
        channel_id: str = "",
        message_ts: str = "",
        start: bool = True,
        running: bool = False,
    ) -> Submission:
        """Write the row (the request is durable from here on), then run it in the background.
        A second submission with the same key returns the first row (`created` False)."""
        submission = await self._write(
            kind,
            payload,
            idempotency_key=idempotency_key,
            actor_user_id=actor_user_id,
            channel_id=channel_id,
            message_ts=message_ts,
            running=running,
        )
        if submission.created and start:
            self.start(submission.operation.id)
        return submission

    def prepare(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str,
        actor_user_id: str = "",
        channel_id: str = "",
        message_ts: str = "",
    ) -> Operation:
        """The row `submit` writes, for a caller that writes it in the same transaction as the
        state change it follows from (`storage.operations.insert_or_get`), then `start`s it."""
        entry = self._kinds.get(kind)
        if entry is None:
            raise ValueError(f"no handler for operation kind {kind}")
        now = self._clock.now()
        return Operation(
            id=uuid.uuid4().hex,
            kind=kind,
            idempotency_key=idempotency_key,
            payload=payload,
            actor_user_id=actor_user_id,
            channel_id=channel_id,
            message_ts=message_ts,
            created_at=now,
            updated_at=now,
            owner=self.owner,
            lease_expires_at=now + timedelta(seconds=self.lease_seconds),
            deadline_at=now + entry.deadline,
        )

    async def _write(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str,
        actor_user_id: str,
        channel_id: str,
        message_ts: str,
        running: bool,
    ) -> Submission:
        row = self.prepare(
            kind,
            payload,
            idempotency_key=idempotency_key,
            actor_user_id=actor_user_id,
            channel_id=channel_id,
            message_ts=message_ts,
        )
        if running:
            row.state, row.attempts = OperationState.RUNNING, 1
        operation, created = await self._db.run(lambda s: repo.insert_or_get(s, row))
        return Submission(operation, created)

    async def accept(
        self,
        kind: str,
        payload: dict[str, Any],
        act: Callable[[], Awaitable[T]],
        *,
        idempotency_key: str,
        actor_user_id: str = "",
        channel_id: str = "",
        written: Callable[[], Awaitable[object]] | None = None,
    ) -> Accepted[T]:
        """Handle an acked Slack request durably: write its row first, then run `act` here.

        The row is written before any slow work (gates included), so a crash in between does
        not lose the request: the row's lease runs out and recovery runs the kind's registered
        handler, which does the same work and tells the person. A retry of the same request
        finds the row and gets `duplicate=True` before anything else runs. `written` runs as
        soon as the row is (both times): acking there leaves no moment when an acked request
        exists nowhere."""
        submission = await self._write(
            kind,
            payload,
            idempotency_key=idempotency_key,
            actor_user_id=actor_user_id,
            channel_id=channel_id,
            message_ts="",
            running=True,  # claimed by this process as it is written: one round trip
        )
        operation = submission.operation
        if written is not None:
            await written()  # e.g. Slack's ack, once the request is durable
        if not submission.created:
            log.info("request %s (%s) already accepted: a retry", idempotency_key, kind)
            return Accepted(None, duplicate=True)
        current = asyncio.current_task()
        if current is not None:
            self._running[operation.id] = current  # type: ignore[assignment]
            self._renewed[operation.id] = time.monotonic()
        faults.point(f"operation.accepted:{kind}")
        outcome: OperationState | None = None
        error = ""
        try:
            value = await act()
            outcome = OperationState.SUCCEEDED
        except ForgebotError as exc:
            outcome, error = OperationState.FAILED, str(exc)  # the person is told by the caller
            raise
        except Exception as exc:
            outcome, error = OperationState.FAILED, f"internal error ({type(exc).__name__})"
            raise
        finally:
            # Cancelled (lost lease, shutdown): no outcome; recovery finishes it.
            self._running.pop(operation.id, None)
            self._renewed.pop(operation.id, None)
            self._lost.discard(operation.id)
            if outcome is not None:
                done, final = self._clock.now(), outcome
                with (
                    contextlib.suppress(DatabaseUnavailable),
                    retrying_until(time.monotonic() + self.lease_seconds),
                ):
                    await self._db.run(
                        lambda s: repo.finish(
                            s, operation.id, owner=self.owner, to=final, now=done, error=error
                        )
                    )
        return Accepted(value, duplicate=False)

    def start(
        self, operation_id: str, *, after: Callable[[], Awaitable[None]] | None = None
    ) -> asyncio.Task[None]:
        """Run the operation now, or once `after()` returns (a webhook's sync waits until the
        webhooks still arriving are answered); `wait_idle` covers the wait too."""

        async def execute() -> None:
            if after is not None:
                await after()
            await self.execute(operation_id)

        task = asyncio.create_task(execute(), name=f"operation-{operation_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- running -----------------------------------------------------------------------------
    async def execute(self, operation_id: str, *, resuming: bool = False) -> None:
        """Claim the row and run its handler; does nothing if another process holds it."""
        if operation_id in self._running:
            return
        now = self._clock.now()
        lease_until = now + timedelta(seconds=self.lease_seconds)
        try:
            claimed = await self._db.run(
                lambda s: repo.claim(
                    s, operation_id, owner=self.owner, now=now, lease_until=lease_until
                )
            )
        except DatabaseUnavailable:
            log.warning("operation %s not started: database unavailable", operation_id)
            return  # our lease runs out and recovery starts it
        if not claimed:
            return  # another task, replica or retry owns it
        operation = await self._db.run(lambda s: repo.get(s, operation_id))
        assert operation is not None
        current = asyncio.current_task()
        assert current is not None
        self._running[operation_id] = current  # type: ignore[assignment]
        self._renewed[operation_id] = time.monotonic()
        faults.point(f"operation.claimed:{operation.kind}")
        try:
            await self._run(operation, resuming=resuming)
        except asyncio.CancelledError:
            if operation_id in self._lost:
                log.warning(
                    "operation %s (%s): lease lost, stopped acting here",
                    operation_id,
                    operation.kind,
                )
                return
            raise
        finally:
            self._running.pop(operation_id, None)
            self._renewed.pop(operation_id, None)
            self._lost.discard(operation_id)

    async def _run(self, operation: Operation, *, resuming: bool) -> None:
        entry = self._kinds[operation.kind]
        deadline_at = operation.deadline_at or (operation.created_at + entry.deadline)
        left = (deadline_at - self._clock.now()).total_seconds()
        if left <= 0 or operation.attempts > MAX_ATTEMPTS:
            why = (
                "it ran out of time"
                if left <= 0
                else f"it was interrupted {operation.attempts - 1} times"
            )
            await self._fail(operation, f"forgebot gave up on it: {why}", announce=True)
            return
        if resuming:
            log.info("resuming operation %s (%s)", operation.id, operation.kind)
        with retrying_until(time.monotonic() + left):
            try:
                async with asyncio.timeout(left):
                    result = await entry.handler(operation)
            except TimeoutError:
                await self._fail(
                    operation,
                    f"it did not finish within {_human(entry.deadline)}; "
                    f"reference {operation.id[:8]}",
                    announce=True,
                )
            except ForgebotError as exc:
                await self._fail(operation, str(exc), announce=False)
            except DatabaseUnavailable:
                # Down past the deadline: nothing can be written now; recovery fails it later.
                log.error("operation %s (%s): database unavailable", operation.id, operation.kind)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("operation %s (%s) crashed", operation.id, operation.kind)
                await self._fail(
                    operation,
                    f"an internal error stopped it ({type(exc).__name__}); "
                    f"reference {operation.id[:8]}",
                    announce=True,
                )
            else:
                faults.point(f"operation.handled:{operation.kind}")
                done = self._clock.now()
                await self._db.run(
                    lambda s: repo.finish(
                        s,
                        operation.id,
                        owner=self.owner,
                        to=OperationState.SUCCEEDED,
                        now=done,
                        result=result or {},
                    )
                )
                faults.point(f"operation.finished:{operation.kind}")

    async def _fail(self, operation: Operation, reason: str, *, announce: bool) -> None:
        now = self._clock.now()
        try:
            moved = await self._db.run(
                lambda s: repo.finish(
                    s,
                    operation.id,
                    owner=self.owner,
                    to=OperationState.FAILED,
                    now=now,
                    error=reason[:2000],
                )
            )
        except DatabaseUnavailable:
            log.error("operation %s: could not record its failure (database down)", operation.id)
            return
        if not moved:
            return  # another process took it over; it reports the outcome
        entry = self._kinds.get(operation.kind)
        listener = entry.on_failure if entry else None
        if listener is not None:
            try:
                await listener(operation, reason)
            except Exception:
                log.exception("failure listener for %s failed", operation.kind)
        if announce and self.announce is not None:
            try:
                await self.announce(operation, reason)
            except Exception:
                log.exception("could not tell anyone that operation %s failed", operation.id)

    # --- recovery and the heartbeat ------------------------------------------------------------
    async def recover(self) -> int:
        """Take over what no live process is running (a crash, an expired lease); returns how
        many operations it started here."""
        now = self._clock.now()
        here = list(self._running)
        pending = await self._db.run(
            lambda s: repo.claimable(s, owner=self.owner, now=now, exclude=here)
        )
        started = 0
        for operation in pending:
            if operation.kind not in self._kinds:
                await self._abandon(operation)
                continue
            log.info(
                "taking over operation %s (%s) left %s by %s",
                operation.id,
                operation.kind,
                operation.state,
                operation.owner or "an older version",
            )
            task = asyncio.create_task(
                self.execute(operation.id, resuming=True), name=f"operation-{operation.id}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started += 1
        return started

    async def _abandon(self, operation: Operation) -> None:
        now = self._clock.now()
        lease_until = now + timedelta(seconds=self.lease_seconds)
        claimed = await self._db.run(
            lambda s: repo.claim(
                s, operation.id, owner=self.owner, now=now, lease_until=lease_until
            )
        )
        if claimed:
            await self._fail(
                operation, "this forgebot version no longer knows how to run it", announce=True
            )

    async def heartbeat(self) -> None:
        """Renew the leases of what runs here; stop what lost its lease."""
        now_mono = time.monotonic()
        ids = list(self._running)
        if not ids:
            return
        lease_until = self._clock.now() + timedelta(seconds=self.lease_seconds)
        try:
            held = await self._db.run(
                lambda s: repo.renew(s, ids, owner=self.owner, lease_until=lease_until)
            )
        except DatabaseUnavailable:
            for operation_id in ids:
                if now_mono - self._renewed.get(operation_id, now_mono) >= self.lease_seconds:
                    self._stop(operation_id, "lease not renewed for a whole lease")
            return
        for operation_id in ids:
            if operation_id in held:
                self._renewed[operation_id] = now_mono
            elif operation_id in self._running:
                self._stop(operation_id, "another process took it over")

    def _stop(self, operation_id: str, why: str) -> None:
        task = self._running.get(operation_id)
        if task is None or task.done():
            return
        log.warning("operation %s: %s; stopping it here", operation_id, why)
        self._lost.add(operation_id)
        task.cancel()

    def start_maintenance(self) -> None:
        """Heartbeat and periodic recovery, for as long as the process lives."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._maintain(), name="operations-maintenance")

    async def stop_maintenance(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _maintain(self) -> None:
        beat = max(self.lease_seconds / 3, 0.05)
        next_recovery = time.monotonic() + self.recovery_seconds
        while True:
            await asyncio.sleep(beat)
            try:
                await self.heartbeat()
                if time.monotonic() >= next_recovery:
                    next_recovery = time.monotonic() + self.recovery_seconds
                    if started := await self.recover():
                        log.info("recovery took over %d operation(s)", started)
            except DatabaseUnavailable as exc:
                log.warning("operations maintenance: database unavailable (%s)", exc)
            except Exception:
                log.exception("operations maintenance failed; trying again")

    # --- shutdown and tests ------------------------------------------------------------------
    async def drain(self, timeout: float) -> bool:
        """Wait for running operations (graceful shutdown); True if all finished in time."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending

    async def release(self) -> None:
        """Shutting down: stop what still runs here and hand its rows to the other replicas
        at once (their leases end now) instead of after a lease."""
        ids = list(self._running)
        for operation_id in ids:
            self._stop(operation_id, "shutting down")
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if ids:
            now = self._clock.now()
            with contextlib.suppress(DatabaseUnavailable):
                await self._db.run(lambda s: repo.release(s, ids, owner=self.owner, now=now))

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes else f"{int(delta.total_seconds())} s"
