"""Cost Explorer answers cached in the database, with one request in flight per query.

Every Cost Explorer request is billed and its data refreshes a few times a day, so an answer
is kept for a TTL (6 h by default) in the database, where every replica finds it. Within a
process, concurrent misses for the same key share one fetch (single-flight): a hundred
people typing `/cost` at 09:00 cost one request.

Each process also keeps the decoded answers it has seen, until their database entry expires:
decoding a two-month daily report costs milliseconds of event-loop time, which under load
delayed other requests' acks more than anything else. An entry never changes before it
expires, so this copy cannot go stale.

An expired entry stays in the database for `STALE_KEEP` more: when the refresh fails for a
passing reason (throttling, an unreachable or failing endpoint), the last known answer is
returned, marked stale with the reason, so people see a figure with its age rather than
"try again". Notes (`note`/`noted`) remember short facts with their own lifetime, such as
"Cost Explorer cannot forecast for this scope", so no replica pays to learn them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from core.clock import Clock
from storage import cost as repo
from storage.db import Database

log = logging.getLogger(__name__)

DEFAULT_TTL = timedelta(hours=6)
STALE_KEEP = timedelta(days=7)
"""How long after expiry an answer is kept to stand in when a refresh fails."""
MEMORY_ENTRIES = 2000
"""Decoded answers kept per process (one per scope and period asked about)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Cached(Generic[T]):
    value: T
    fetched_at: datetime
    expires_at: datetime
    hit: bool
    """Whether it came from the cache (no request was made for this caller)."""
    stale: str | None = None
    """Why an expired answer stands in (the refresh failed), or None for a fresh one."""


@dataclass(frozen=True)
class Codec(Generic[T]):
    encode: Callable[[T], str]
    decode: Callable[[str], T]


class CostCache:
    def __init__(self, db: Database, clock: Clock, ttl: timedelta = DEFAULT_TTL) -> None:
        self._db = db
        self._clock = clock
        self.ttl = ttl
        self._in_flight: dict[str, asyncio.Future[Cached[Any]]] = {}
        self._memory: dict[str, Cached[Any]] = {}
        self.hits = 0
        self.misses = 0

    def peek(self, key: str) -> Cached[Any] | None:
        """The decoded answer if this process holds an unexpired one (no I/O)."""
        remembered = self._memory.get(key)
        if remembered is None or remembered.expires_at <= self._clock.now():
            return None
        self.hits += 1
        return remembered

    async def get(
        self,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
        *,
        stale_on: tuple[type[Exception], ...] = (),
    ) -> Cached[T]:
        """The answer for `key`: from memory, the database, or `fetch`. If `fetch` raises
        one of `stale_on`, the last expired answer (kept `STALE_KEEP`) is returned, marked
        stale with the error's message; without one, the error is raised."""
        remembered = self._memory.get(key)
        if remembered is not None and remembered.expires_at > self._clock.now():
            self.hits += 1
            return Cached(remembered.value, remembered.fetched_at, remembered.expires_at, hit=True)
        running = self._in_flight.get(key)
        if running is not None:
            self.hits += 1
            shared: Cached[T] = await asyncio.shield(running)
            return Cached(shared.value, shared.fetched_at, shared.expires_at, hit=True)
        future: asyncio.Future[Cached[Any]] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._load(key, fetch, codec, stale_on)
        except BaseException as exc:
            future.set_exception(exc)
            # Waiters get the error; nobody else must see "exception was never retrieved".
            future.exception()
            raise
        else:
            future.set_result(result)
            if result.stale is None:
                self._remember(key, result)
            return result
        finally:
            del self._in_flight[key]

    async def _load(
        self,
        key: str,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
        stale_on: tuple[type[Exception], ...],
    ) -> Cached[T]:
        now = self._clock.now()
        entry = await self._db.run(lambda s: repo.cached(s, key, now))
        if entry is not None:
            self.hits += 1
            return Cached(codec.decode(entry.payload), entry.fetched_at, entry.expires_at, hit=True)
        self.misses += 1
        try:
            value = await fetch()
        except stale_on as exc:
            old = await self._db.run(lambda s: repo.cached(s, key, now - STALE_KEEP))
            if old is None:
                raise
            log.info("serving a stale answer for %s: %s", key, exc)
            return Cached(
                codec.decode(old.payload), old.fetched_at, old.expires_at, hit=True, stale=str(exc)
            )
        fetched_at = self._clock.now()
        expires_at = fetched_at + self.ttl
        payload = codec.encode(value)
        await self._db.run(lambda s: repo.store(s, key, payload, fetched_at, expires_at))
        return Cached(value, fetched_at, expires_at, hit=False)

    def _remember(self, key: str, result: Cached[Any]) -> None:
        if len(self._memory) >= MEMORY_ENTRIES:
            now = self._clock.now()
            self._memory = {k: v for k, v in self._memory.items() if v.expires_at > now}
            if len(self._memory) >= MEMORY_ENTRIES:
                self._memory.pop(next(iter(self._memory)))
        self._memory[key] = result

    async def last_known(self, key: str, codec: Codec[T]) -> Cached[T] | None:
        """The answer held for `key`, even expired (up to `STALE_KEEP`), without fetching;
        an expired one is marked stale."""
        remembered = self.peek(key)
        if remembered is not None:
            return Cached(remembered.value, remembered.fetched_at, remembered.expires_at, True)
        now = self._clock.now()
        entry = await self._db.run(lambda s: repo.cached(s, key, now - STALE_KEEP))
        if entry is None:
            return None
        stale = "not refreshed since" if entry.expires_at <= now else None
        return Cached(codec.decode(entry.payload), entry.fetched_at, entry.expires_at, True, stale)

    async def note(self, key: str, text: str, lifetime: timedelta) -> None:
        """Remember `text` under `key` for `lifetime`, in memory and for every replica."""
        now = self._clock.now()
        entry: Cached[Any] = Cached(text, now, now + lifetime, hit=True)
        await self._db.run(lambda s: repo.store(s, key, text, now, now + lifetime))
        self._remember(key, entry)

    def noted_in_memory(self, key: str) -> str | None:
        remembered = self._memory.get(key)
        if remembered is None or remembered.expires_at <= self._clock.now():
            return None
        return str(remembered.value)

    async def noted(self, key: str) -> str | None:
        """A note still alive, from memory or the database."""
        text = self.noted_in_memory(key)
        if text is not None:
            return text
        now = self._clock.now()
        entry = await self._db.run(lambda s: repo.cached(s, key, now))
        if entry is None:
            return None
        self._remember(key, Cached(entry.payload, entry.fetched_at, entry.expires_at, hit=True))
        return entry.payload

    async def purge_expired(self) -> int:
        """Forget what expired more than `STALE_KEEP` ago (a refresh that fails meanwhile
        still has the last answer to show)."""
        now = self._clock.now()
        self._memory = {k: v for k, v in self._memory.items() if v.expires_at > now}
        return await self._db.run(lambda s: repo.purge_expired(s, now - STALE_KEEP))
