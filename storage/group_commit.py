"""Group commit: many small writes that arrive together share one transaction.

A flood of webhooks (200 pull requests opened at once) is 200 tiny transactions that each wait
for the database's one writer (SQLite) or for a pooled connection and a commit (PostgreSQL),
behind each other and behind every other write the bot is making. `GroupCommit.run(item)` queues
the item and returns its result once it is committed: the items queued while a transaction is
being committed go together in the next one, written by one `apply` call. If one of them raises, the
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
from typing import Any, Generic, TypeVar

from sqlmodel import Session

from storage.db import Database, DatabaseUnavailable

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 100

Apply = Callable[[Session, list[Item]], list[Result]]
"""Writes a batch of items in the session; returns one result per item, in order."""


class GroupCommit(Generic[Item, Result]):
    """`run(item)` returns `apply(session, [..., item, ...])`'s result for it, once committed.
    `apply` sees the whole batch, so it can write it in a few statements (one multi-row
    INSERT rather than one per item): each statement is a round trip to the database, and on
    a busy machine a round trip is a context switch to the database's process."""

    def __init__(
        self, db: Database, apply: Apply[Item, Result], *, max_batch: int = MAX_BATCH
    ) -> None:
        self.db = db
        self.apply = apply
        self.max_batch = max_batch
        # Its own thread (and so its own pooled connection): these writes never queue behind
        # the bot's other database work, which is what the answers would otherwise wait for.
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0
        """Transactions committed so far (for the bench)."""

    async def run(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="group-commit")
        return await future

    async def _write(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                results = await self._commit([item for item, _ in batch])
            except DatabaseUnavailable:
                for _, future in batch:
                    raise_in(future)
                continue
            except Exception:
                if len(batch) == 1:
                    raise_in(batch[0][1])
                    continue
                # One of them failed, and took the others' writes with it: each on its own.
                for item, future in batch:
                    await _settle(future, self._first(item))
                continue
            self.transactions += 1
            for (_, future), value in zip(batch, results, strict=True):
                if not future.done():  # else its requester went away; the write stands
                    future.set_result(value)

    async def _first(self, item: Item) -> Result:
        return (await self._commit([item]))[0]

    async def _commit(self, items: list[Item]) -> list[Result]:
        def work(session: Session) -> list[Result]:
            results = self.apply(session, items)
            if len(results) != len(items):
                raise ValueError("apply returned a result count unlike its batch's")
            return results

        call = functools.partial(contextvars.copy_context().run, self.db.run_sync, work)
        return await asyncio.get_running_loop().run_in_executor(self._lane, call)

    def close(self) -> None:
        self._lane.shutdown(wait=False)


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
