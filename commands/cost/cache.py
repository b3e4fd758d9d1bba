"""Cost Explorer answers cached in the database, with one request in flight per query.

Every Cost Explorer request is billed and its data refreshes a few times a day, so an answer
is kept for a TTL (6 h by default) in the database, where every replica finds it. Within a
process, concurrent misses for the same key share one fetch (single-flight): a hundred
people typing `/cost` at 09:00 cost one request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from storage import cost as repo
from storage.db import Database

log = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(hours=6)


@dataclass(frozen=True)
class Cached:
    payload: str
    fetched_at: datetime
    hit: bool
    """Whether it came from the cache (no request was made for this caller)."""


class CostCache:
    def __init__(self, db: Database, clock: Clock, ttl: timedelta = DEFAULT_TTL) -> None:
        self._db = db
        self._clock = clock
        self.ttl = ttl
        self._in_flight: dict[str, asyncio.Future[Cached]] = {}
        self.hits = 0
        self.misses = 0

    async def get(self, key: str, fetch: Callable[[], Awaitable[str]]) -> Cached:
        running = self._in_flight.get(key)
        if running is not None:
            self.hits += 1
            result = await asyncio.shield(running)
            return Cached(result.payload, result.fetched_at, hit=True)
        future: asyncio.Future[Cached] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._load(key, fetch)
        except BaseException as exc:
            future.set_exception(exc)
            # Waiters get the error; nobody else must see "exception was never retrieved".
            future.exception()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._in_flight[key]

    async def _load(self, key: str, fetch: Callable[[], Awaitable[str]]) -> Cached:
        now = self._clock.now()
        entry = await self._db.run(lambda s: repo.cached(s, key, now))
        if entry is not None:
            self.hits += 1
            return Cached(entry.payload, entry.fetched_at, hit=True)
        self.misses += 1
        payload = await fetch()
        fetched_at = self._clock.now()
        expires_at = fetched_at + self.ttl
        await self._db.run(lambda s: repo.store(s, key, payload, fetched_at, expires_at))
        return Cached(payload, fetched_at, hit=False)

    async def purge_expired(self) -> int:
        now = self._clock.now()
        return await self._db.run(lambda s: repo.purge_expired(s, now))
