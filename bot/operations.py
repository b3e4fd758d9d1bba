"""Durable state changes: written as an operation row before they run, executed from the row.

`submit` inserts the row (`accepted`) under an idempotency key, so a Slack retry, a double
click or a second replica finds the existing row instead of acting twice. Execution moves the
row `accepted -> running -> succeeded|failed` with guarded transitions. On start-up `recover`
resumes rows a crash left unfinished (handlers are written to be re-run safely) and reports
them to the user, so work is never silently lost.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.clock import Clock
from bot.errors import ForgebotError
from storage import operations as repo
from storage.db import Database
from storage.models import Operation, OperationState

log = logging.getLogger(__name__)

OperationHandler = Callable[[Operation], Awaitable[dict[str, Any] | None]]
FailureListener = Callable[[Operation, str], Awaitable[None]]


@dataclass(frozen=True)
class Submission:
    operation: Operation
    created: bool


class OperationRunner:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._handlers: dict[str, OperationHandler] = {}
        self._on_failure: dict[str, FailureListener] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def register(
        self, kind: str, handler: OperationHandler, on_failure: FailureListener | None = None
    ) -> None:
        if kind in self._handlers:
            raise ValueError(f"operation kind {kind} registered twice")
        self._handlers[kind] = handler
        if on_failure is not None:
            self._on_failure[kind] = on_failure

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
    ) -> Submission:
        if kind not in self._handlers:
            raise ValueError(f"no handler for operation kind {kind}")
        now = self._clock.now()
        row = Operation(
            id=uuid.uuid4().hex,
            kind=kind,
            idempotency_key=idempotency_key,
            payload=payload,
            actor_user_id=actor_user_id,
            channel_id=channel_id,
            message_ts=message_ts,
            created_at=now,
            updated_at=now,
        )
        operation, created = await self._db.run(lambda s: repo.insert_or_get(s, row))
        if created and start:
            self.start(operation.id)
        return Submission(operation, created)

    def start(self, operation_id: str) -> asyncio.Task[None]:
        task = asyncio.create_task(self.execute(operation_id), name=f"operation-{operation_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def execute(self, operation_id: str, *, resuming: bool = False) -> None:
        now = self._clock.now()
        expected = [OperationState.ACCEPTED]
        if resuming:
            expected.append(OperationState.RUNNING)
        moved = await self._db.run(
            lambda s: repo.transition(
                s, operation_id, expected=expected, to=OperationState.RUNNING, now=now
            )
        )
        if not moved:
            return  # another task, replica or retry owns it
        operation = await self._db.run(lambda s: repo.get(s, operation_id))
        assert operation is not None
        handler = self._handlers[operation.kind]
        try:
            result = await handler(operation)
        except ForgebotError as exc:
            await self._fail(operation, str(exc))
        except Exception as exc:
            log.exception("operation %s (%s) crashed", operation.id, operation.kind)
            await self._fail(
                operation,
                f"an internal error stopped it ({type(exc).__name__}); "
                f"reference {operation.id[:8]}",
            )
        else:
            done = self._clock.now()
            await self._db.run(
                lambda s: repo.transition(
                    s,
                    operation_id,
                    expected=[OperationState.RUNNING],
                    to=OperationState.SUCCEEDED,
                    now=done,
                    result=result or {},
                )
            )

    async def _fail(self, operation: Operation, reason: str) -> None:
        now = self._clock.now()
        await self._db.run(
            lambda s: repo.transition(
                s,
                operation.id,
                expected=[OperationState.RUNNING],
                to=OperationState.FAILED,
                now=now,
                error=reason[:2000],
            )
        )
        listener = self._on_failure.get(operation.kind)
        if listener is not None:
            try:
                await listener(operation, reason)
            except Exception:
                log.exception("failure listener for %s failed", operation.kind)

    async def recover(self) -> int:
        """Resume everything a previous process left unfinished; returns how many."""
        pending = await self._db.run(repo.unfinished)
        for operation in pending:
            if operation.kind not in self._handlers:
                await self._abandon(operation.id)
                continue
            log.info(
                "resuming operation %s (%s) left %s", operation.id, operation.kind, operation.state
            )
            task = asyncio.create_task(self.execute(operation.id, resuming=True))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(pending)

    async def _abandon(self, operation_id: str) -> None:
        now = self._clock.now()
        await self._db.run(
            lambda s: repo.transition(
                s,
                operation_id,
                expected=[OperationState.ACCEPTED, OperationState.RUNNING],
                to=OperationState.FAILED,
                now=now,
                error="this forgebot version no longer knows how to run it",
            )
        )

    async def drain(self, timeout: float) -> bool:
        """Wait for running operations (graceful shutdown); True if all finished in time."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
