"""Group commit: many small writes that arrive together share one transaction.

A flood of webhooks (200 pull requests opened at once) is 200 tiny transactions that each wait
for the database's one writer (SQLite) or for a pooled connection and a commit (PostgreSQL),
behind each other and behind every other write the bot is making. `GroupCommit.run(fn)` queues
`fn(session)` and returns its result once it is committed: the writes queued while a
transaction is being committed go together in the next one. If one of them raises, the
transaction is rolled back and each is written again on its own, so one that fails fails alone
(no savepoint per write: that would double the statements of the common case). Nothing is
answered before its write is durable; the batching only removes the waiting. A database that
cannot be reached fails the batch at once (`DatabaseUnavailable`: the webhook answers 503 and
the code host delivers again), without `Database.run`'s retries.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlmodel import Session

from storage.db import Database, DatabaseUnavailable

T = TypeVar("T")

MAX_BATCH = 100


class GroupCommit:
    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        # Its own thread (and so its own pooled connection): these writes never queue behind
        # the bot's other database work, which is what the answers would otherwise wait for.
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
        self._pending: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0
        """Transactions committed so far (for the bench)."""

    async def run(self, fn: Callable[[Session], T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="group-commit")
        return await future

    async def _write(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                results = await self._commit(functools.partial(_apply, fns=[fn for fn, _ in batch]))
            except DatabaseUnavailable:
                for _, future in batch:
                    raise_in(future)
                continue
            except Exception:
                if len(batch) == 1:
                    raise_in(batch[0][1])
                    continue
                # One of them failed, and took the others' writes with it: each on its own.
                for fn, future in batch:
                    await _settle(future, self._commit(fn))
                continue
            self.transactions += 1
            for (_, future), value in zip(batch, results, strict=True):
                if not future.done():  # else its requester went away; the write stands
                    future.set_result(value)

    async def _commit(self, fn: Callable[[Session], T]) -> T:
        call = functools.partial(contextvars.copy_context().run, self.db.run_sync, fn)
        return await asyncio.get_running_loop().run_in_executor(self._lane, call)

    def close(self) -> None:
        self._lane.shutdown(wait=False)


def _apply(session: Session, fns: list[Callable[[Session], Any]]) -> list[Any]:
    return [fn(session) for fn in fns]


def raise_in(future: asyncio.Future[Any]) -> None:
    """Hand the exception being handled to `future`'s awaiter."""
    exc = sys.exc_info()[1]
    if exc is not None and not future.done():
        future.set_exception(exc)


async def _settle(future: asyncio.Future[Any], work: Awaitable[Any]) -> None:
    try:
        value = await work
    except Exception:
        raise_in(future)
    else:
        if not future.done():
            future.set_result(value)
