"""Engine, sessions and the one way the async bot touches the database.

SQLModel/SQLAlchemy sessions here are synchronous; the bot's event loop never runs them.
`Database.run(fn)` executes `fn(session)` on a small dedicated thread pool and commits, so a
slow or unreachable database never stalls Slack acks.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, create_engine

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The database cannot be reached right now; callers answer 'temporarily unavailable'."""


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 15},
            pool_pre_ping=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers proceed while one writer commits; busy_timeout waits instead of
            # failing when two bot threads write at once.
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL never corrupts the database; it syncs at checkpoints rather
                # than at every commit, which the audit log (written per request) needs.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=5,
        connect_args={"connect_timeout": 3},
    )


class Database:
    def __init__(self, url: str, *, workers: int = 8) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=workers)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def run_sync(self, fn: Callable[[Session], T]) -> T:
        try:
            with self.session() as session:
                return fn(session)
        except OperationalError as exc:
            if _is_connectivity(exc):
                raise DatabaseUnavailable(str(exc.orig).splitlines()[0]) from exc
            raise

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a transaction off the event loop; commit on success."""
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, self.run_sync, fn)
        return await loop.run_in_executor(self._executor, call)

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(self.run(lambda s: s.exec(text("SELECT 1")).one()), 3)  # type: ignore[call-overload]
        except (TimeoutError, DatabaseUnavailable, DBAPIError, OSError):
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.engine.dispose()


def _is_connectivity(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    markers = (
        "connection",
        "could not connect",
        "server closed",
        "terminating",
        "timeout",
        "the database system is",
        "unable to open database",
    )
    return exc.connection_invalidated or any(m in message for m in markers)
