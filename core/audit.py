"""Every command and every button or modal action lands here, whatever its outcome."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import Any

from core.clock import Clock
from core.logs import redact, request_id
from storage import audit as audit_repo
from storage.db import Database, DatabaseUnavailable
from storage.models import AuditOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditRecord:
    actor_user_id: str
    command: str
    outcome: AuditOutcome
    arguments: dict[str, Any]
    actor_slack_team_id: str = ""
    actor_team: str = ""
    channel_id: str = ""
    error: str = ""
    operation_id: str | None = None


class AuditLog:
    """Writes entries in batches: each `record` waits until its entry is committed, but many
    concurrent commands share one transaction instead of one commit each."""

    def __init__(
        self, db: Database, clock: Clock, *, batch: int = 500, window: float = 0.05
    ) -> None:
        self.window = window
        self._db = db
        self._clock = clock
        self._batch = batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        # Entries the database could not take during an outage, stored when it is back.
        self._backlog: list[dict[str, Any]] = []
        self.backlog_limit = 20_000
        self._retrier: asyncio.Task[None] | None = None

    async def record(self, record: AuditRecord) -> None:
        # A plain row, not an AuditEntry instance: building a table model costs more than the
        # whole rest of a `/forge help`, and this runs for every request.
        entry: dict[str, Any] = dict(
            at=self._clock.now(),
            actor_user_id=record.actor_user_id,
            actor_slack_team_id=record.actor_slack_team_id,
            actor_team=record.actor_team,
            channel_id=record.channel_id,
            command=record.command,
            arguments={
                k: redact(v) if isinstance(v, str) else v for k, v in record.arguments.items()
            },
            outcome=record.outcome.value,
            error=redact(record.error)[:2000],
            request_id=request_id.get(),
            operation_id=record.operation_id,
        )
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((entry, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await done

    async def _write(self) -> None:
        # A short window gathers the entries of concurrent requests into one transaction; each
        # caller still waits for its own entry to be committed.
        await asyncio.sleep(self.window)
        while self._queue:
            batch, self._queue = self._queue[: self._batch], self._queue[self._batch :]
            entries = [entry for entry, _ in batch]
            try:
                await self._db.run(functools.partial(audit_repo.append_many, rows=entries))
            except DatabaseUnavailable:
                # The actions' outcomes were already decided; losing the database must not turn
                # them into errors for the users. The entries wait in memory (bounded) and are
                # stored when the database is back; beyond the bound, the log keeps the trail.
                room = max(0, self.backlog_limit - len(self._backlog))
                self._backlog.extend(entries[:room])
                for entry in entries[room:]:
                    log.error(
                        "audit entry not stored (database unavailable): %s %s %s",
                        entry["actor_user_id"],
                        entry["command"],
                        entry["outcome"],
                    )
                if self._retrier is None or self._retrier.done():
                    self._retrier = asyncio.create_task(self._store_backlog())
            except Exception:
                log.exception("audit entries not stored")
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    @property
    def backlog(self) -> int:
        """Entries waiting for the database to come back."""
        return len(self._backlog)

    async def _store_backlog(self, first_wait: float = 0.5, max_wait: float = 5.0) -> None:
        wait = first_wait
        while self._backlog:
            await asyncio.sleep(wait)
            pending = self._backlog[: self._batch]
            try:
                await self._db.run(functools.partial(audit_repo.append_many, rows=pending))
            except DatabaseUnavailable:
                wait = min(wait * 2, max_wait)
                continue
            except Exception:
                log.exception("%d audit entries could not be stored", len(pending))
            del self._backlog[: len(pending)]
            wait = 0.0
        log.info("audit entries kept during a database outage are stored")

    async def flush(self, timeout: float) -> bool:
        """Store what is queued or kept (graceful shutdown); True if nothing is left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._queue or self._backlog:
                    if self._writer is not None and not self._writer.done():
                        await self._writer
                    elif self._backlog and (self._retrier is None or self._retrier.done()):
                        self._retrier = asyncio.create_task(self._store_backlog(0.0))
                    if self._retrier is not None and not self._retrier.done():
                        await self._retrier
                    await asyncio.sleep(0.01)
        if self._backlog:
            log.error("shutdown: %d audit entries could not be stored", len(self._backlog))
        return not (self._queue or self._backlog)
