"""Engine, sessions and the one way the async bot touches the database.

SQLModel/SQLAlchemy sessions here are synchronous; the bot's event loop never runs them.
`Database.run(fn)` executes `fn(session)` on a small dedicated thread pool and commits, so a
slow or unreachable database never stalls Slack acks.

Every call is bounded: PostgreSQL connections time out connecting (3 s), each statement is
cancelled by the server after `STATEMENT_TIMEOUT_MS`, TCP keepalives and a user timeout turn
a silent network partition into an error within seconds, and a full pool is waited on for at
most 5 s. Where the kernel cannot see a partition (a proxy or a load balancer in between that
keeps acknowledging), the bot bounds each call itself (`CALL_TIMEOUT_S`): a call still
unanswered then shuts down every pooled connection, which ends the calls blocked on them, and
the pool reconnects (within the connect timeout) when the network is back. Each of those failures surfaces as `DatabaseUnavailable`, which request handlers
answer with "temporarily unavailable".

Inside `retrying_until(deadline)` (what the operation runner wraps each operation in), a
`DatabaseUnavailable` is retried with backoff until the database is back or the deadline
passes, so an outcome reached during a short outage is still written.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session, create_engine

T = TypeVar("T")

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 15_000
"""No statement the bot runs takes more than a few milliseconds; 15 s means the server or the
network is in trouble."""
POOL_TIMEOUT_S = 5
TCP_USER_TIMEOUT_MS = 10_000
"""Unacknowledged data on a connection for this long (a silent partition) fails the call."""
CALL_TIMEOUT_S = 20.0
"""The bot's own bound on one database call, for a partition the kernel cannot see."""

_retry_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "forgebot_db_retry_deadline", default=None
)


@contextmanager
def retrying_until(deadline: float) -> Iterator[None]:
    """Within this block (and the tasks it starts), `Database.run` retries an unreachable
    database with backoff until `deadline` (`time.monotonic()` seconds)."""
    token = _retry_deadline.set(deadline)
    try:
        yield
    finally:
        _retry_deadline.reset(token)


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
        pool_timeout=POOL_TIMEOUT_S,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
            f" -c idle_in_transaction_session_timeout={STATEMENT_TIMEOUT_MS * 2}",
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        },
    )


class Database:
    def __init__(self, url: str, *, workers: int = 8) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=workers)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")
        self.call_timeout = CALL_TIMEOUT_S
        # The driver connections the pool opened, to shut down when the network is silent.
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        if self.engine.dialect.name == "postgresql":
            event.listen(self.engine, "connect", self._track)

    def _track(self, dbapi_connection: Any, _record: Any) -> None:
        self._connections.add(dbapi_connection)

    def _sever(self) -> int:
        """Shut down the socket of every open pooled connection: a call blocked reading one
        fails at once ("server closed the connection"), and the pool replaces it."""
        severed = 0
        for connection in list(self._connections):
            descriptor = _socket_of(connection)
            if descriptor is None:
                continue
            with contextlib.suppress(OSError):
                with socket.socket(fileno=os.dup(descriptor)) as duplicate:
                    duplicate.shutdown(socket.SHUT_RDWR)
                severed += 1
        return severed

    async def _bounded(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, call)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.call_timeout)
        except TimeoutError:
            # Its outcome, whenever it comes, is no one's: retrieve it so it is not reported.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            severed = self._sever()
            log.warning(
                "a database call got no answer in %.0f s; closed %d connection(s)",
                self.call_timeout,
                severed,
            )
            raise DatabaseUnavailable(
                f"no answer from the database in {self.call_timeout:.0f} s"
            ) from None

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
        except PoolTimeout as exc:
            raise DatabaseUnavailable("every database connection is busy") from exc

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in a transaction off the event loop; commit on success.

        Retried while the database is unreachable inside `retrying_until` (see the module
        docstring); raises `DatabaseUnavailable` otherwise."""
        delay = 0.2
        while True:
            call = functools.partial(contextvars.copy_context().run, self.run_sync, fn)
            try:
                return await self._bounded(call)
            except DatabaseUnavailable as exc:
                deadline = _retry_deadline.get()
                if deadline is None or time.monotonic() + delay > deadline:
                    raise
                log.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def ping(self) -> bool:
        try:
            await asyncio.wait_for(self.run(lambda s: s.exec(text("SELECT 1")).one()), 3)  # type: ignore[call-overload]
        except (TimeoutError, DatabaseUnavailable, DBAPIError, OSError):
            return False
        return True

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.engine.dispose()


def _socket_of(connection: Any) -> int | None:
    """The socket of an open psycopg connection; None once it is closed."""
    try:
        return int(connection.pgconn.socket)
    except Exception:  # psycopg: "the connection is closed"
        return None


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
