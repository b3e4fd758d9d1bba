"""One scheduler leader among the replicas: a Kubernetes Lease, a PostgreSQL advisory lock, or
(SQLite: one process) always this one.

Every replica serves HTTP; only the leader runs scheduled jobs. `Leadership` keeps trying to
acquire or renew every `retry_seconds`; it calls `on_elected` when this replica becomes the
leader and `on_deposed` when it stops being one (lost the lock, could not renew in time, or is
shutting down). The `job_runs` guard in the database stays the last line of defence: even two
leaders at once (a partition) cannot run one fire time twice.

The Lease follows client-go's leader election: a holder that stops renewing is replaced once
`leaseDurationSeconds` have passed *as observed by this replica* (clocks of replicas are never
compared), writes carry the read's `resourceVersion` so that of two candidates exactly one wins
(the other gets a 409), and a leader that cannot renew within two thirds of the lease steps
down before anyone else may take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from core import metrics
from core.config import Settings

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LOCK_NAME = b"forgebot:scheduler-leader"


class Elector(Protocol):
    kind: str

    async def try_acquire(self) -> bool:
        """Acquire or renew; True while this replica holds the leadership."""
        ...

    async def release(self) -> None:
        """Give the leadership up at once (shutdown), so another replica need not wait."""
        ...


class AlwaysLeader:
    """SQLite is one process: it is the leader."""

    kind = "always"

    async def try_acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


def advisory_lock_key(name: bytes = LOCK_NAME) -> int:
    """A stable signed 64-bit key for `pg_try_advisory_lock` (PostgreSQL's bigint)."""
    return int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)


class AdvisoryLockElector:
    """A session-level PostgreSQL advisory lock held on a connection of its own.

    PostgreSQL releases the lock when that session ends, so a replica that dies (or whose
    connection is cut) loses it as soon as the server notices; renewing is checking that the
    connection still works."""

    kind = "advisory-lock"

    def __init__(self, database_url: str, *, timeout: float = 3.0, key: int | None = None) -> None:
        from sqlalchemy.engine import make_url

        url = make_url(database_url).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._timeout = timeout
        self._key = advisory_lock_key() if key is None else key
        self._conn: Any = None
        self._held = False

    async def _close(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self._timeout)

    async def try_acquire(self) -> bool:
        import psycopg

        try:
            if self._conn is None:
                self._conn = await asyncio.wait_for(
                    psycopg.AsyncConnection.connect(
                        self._conninfo,
                        autocommit=True,
                        connect_timeout=max(1, int(self._timeout)),
                        application_name="forgebot-leader",
                    ),
                    self._timeout,
                )
            # A session lock stays held as long as the session lives: once we hold it, renewing
            # is proving the session is still alive (asking again would stack the lock).
            query = "SELECT 1" if self._held else "SELECT pg_try_advisory_lock(%s)"
            cursor = await asyncio.wait_for(
                self._conn.execute(query, () if self._held else (self._key,)), self._timeout
            )
            row = await asyncio.wait_for(cursor.fetchone(), self._timeout)
            self._held = self._held or bool(row and row[0])
            return self._held
        except (OSError, TimeoutError, psycopg.Error) as exc:
            log.warning("leader lock: the database is unreachable (%s)", type(exc).__name__)
            await self._close()
            raise

    async def release(self) -> None:
        # Closing the session releases every lock it holds.
        await self._close()


class LeaseElector:
    """A `coordination.k8s.io/v1` Lease, as client-go's leader election uses it."""

    kind = "lease"

    def __init__(
        self,
        identity: str,
        *,
        name: str,
        namespace: str,
        lease_seconds: float,
        kubeconfig: str | None = None,
        context: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self.name = name
        self.namespace = namespace
        self.lease_seconds = lease_seconds
        self._kubeconfig = kubeconfig
        self._context = context
        self._monotonic = monotonic
        self._api: Any = None
        # (resourceVersion, when this replica first saw that version): the expiry clock.
        self._observed: tuple[str, float] | None = None

    def _coordination(self) -> Any:
        from kubernetes import client, config

        if self._api is None:
            configuration = client.Configuration()
            if self._context or self._kubeconfig:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=self._kubeconfig,
                    context=self._context,
                    client_configuration=configuration,
                )
            else:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            configuration.retries = 0
            self._api = client.ApiClient(configuration)
        return client.CoordinationV1Api(self._api)

    def _body(
        self, resource_version: str | None, acquired: str, transitions: int, holder: str | None
    ) -> dict[str, Any]:
        now = _micro_time(datetime.now(UTC))
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": max(1, round(self.lease_seconds)),
                "acquireTime": acquired or now,
                "renewTime": now,
                "leaseTransitions": transitions,
            },
        }

    def _try_acquire_sync(self) -> bool:
        from kubernetes.client.exceptions import ApiException

        api = self._coordination()
        timeout = (3.0, max(3.0, self.lease_seconds / 3))
        try:
            lease: Any = api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                api.create_namespaced_lease(
                    self.namespace,
                    self._body(None, "", 0, self.identity),
                    _request_timeout=timeout,
                )
            except ApiException as conflict:
                if conflict.status == 409:  # another replica created it first
                    return False
                raise
            return True
        spec = lease.spec
        version = lease.metadata.resource_version or ""
        now = self._monotonic()
        if self._observed is None or self._observed[0] != version:
            self._observed = (version, now)
        holder = spec.holder_identity or ""
        duration = float(spec.lease_duration_seconds or self.lease_seconds)
        held_by_me = holder == self.identity
        expired = not holder or now - self._observed[1] >= duration
        if not held_by_me and not expired:
            return False
        acquired = (
            _micro_time(spec.acquire_time) if held_by_me and spec.acquire_time is not None else ""
        )
        transitions = int(spec.lease_transitions or 0) + (0 if held_by_me else 1)
        try:
            api.replace_namespaced_lease(
                self.name,
                self.namespace,
                self._body(version, acquired, transitions, self.identity),
                _request_timeout=timeout,
            )
        except ApiException as exc:
            if exc.status == 409:  # someone wrote first: they renewed or took it over
                return False
            raise
        return True

    def _release_sync(self) -> None:
        api = self._coordination()
        lease: Any = api.read_namespaced_lease(self.name, self.namespace, _request_timeout=3.0)
        if (lease.spec.holder_identity or "") != self.identity:
            return
        body = self._body(
            lease.metadata.resource_version, "", int(lease.spec.lease_transitions or 0), None
        )
        api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=3.0)

    async def try_acquire(self) -> bool:
        with metrics.observe_call("kubernetes", "lease"):
            return await asyncio.to_thread(self._try_acquire_sync)

    async def release(self) -> None:
        try:
            with metrics.observe_call("kubernetes", "lease"):
                await asyncio.to_thread(self._release_sync)
        except Exception as exc:
            log.warning("could not release the leader lease: %s", type(exc).__name__)
        if self._api is not None:
            await asyncio.to_thread(self._api.close)
            self._api = None


def _micro_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_namespace(settings: Settings) -> str:
    if settings.lease_namespace:
        return settings.lease_namespace
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def build_elector(settings: Settings, identity: str, *, in_cluster: bool) -> Elector:
    """The election the settings ask for; `auto`: a Lease in a cluster (or when a lease context
    is configured), a PostgreSQL advisory lock otherwise, always-leader on SQLite."""
    mode = settings.leader_election
    if mode == "auto":
        if settings.is_embedded_sqlite:
            mode = "always"
        elif in_cluster or settings.lease_context:
            mode = "lease"
        else:
            mode = "advisory-lock"
    if mode == "always":
        return AlwaysLeader()
    if mode == "advisory-lock":
        if settings.is_embedded_sqlite:
            raise ValueError("FORGEBOT_LEADER_ELECTION=advisory-lock needs PostgreSQL")
        return AdvisoryLockElector(settings.database_url)
    return LeaseElector(
        identity,
        name=settings.lease_name,
        namespace=lease_namespace(settings),
        lease_seconds=settings.lease_seconds,
        kubeconfig=settings.kubeconfig if settings.lease_context else None,
        context=settings.lease_context,
    )


Callback = Callable[[], Awaitable[None]]


class Leadership:
    """Runs the election loop and tells the scheduler when to start and stop."""

    def __init__(
        self,
        elector: Elector,
        *,
        on_elected: Callback,
        on_deposed: Callback,
        lease_seconds: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.elector = elector
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self.lease_seconds = lease_seconds
        # client-go's proportions: retry every lease/5 (2 s of 15 s), give up renewing at 2/3.
        self.retry_seconds = max(0.05, lease_seconds / 5)
        self.renew_deadline = lease_seconds * 2 / 3
        self._monotonic = monotonic
        self.is_leader = False
        self._last_renewed = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Condition()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.retry_seconds)

    async def step(self) -> None:
        """One acquire-or-renew round (the loop's body; tests may drive it directly)."""
        try:
            held = await asyncio.wait_for(self.elector.try_acquire(), self.renew_deadline)
            failed = False
        except Exception as exc:
            held, failed = False, True
            log.debug("leader election round failed: %s", exc)
        now = self._monotonic()
        if held:
            self._last_renewed = now
            if not self.is_leader:
                await self._become(True)
        elif self.is_leader and (not failed or now - self._last_renewed >= self.renew_deadline):
            # Told someone else holds it, or could not renew in time: others may take over
            # after the lease duration, so we stop before then.
            await self._become(False)

    async def _become(self, leader: bool) -> None:
        self.is_leader = leader
        metrics.LEADER.set(1 if leader else 0)
        metrics.LEADER_CHANGES.labels("elected" if leader else "deposed").inc()
        log.info(
            "this replica %s the scheduler leader (%s)",
            "is now" if leader else "is no longer",
            self.elector.kind,
        )
        try:
            await (self._on_elected() if leader else self._on_deposed())
        except Exception:
            log.exception("leadership change handler failed")
        async with self.changed:
            self.changed.notify_all()

    async def stop(self) -> None:
        """Step down and release, so another replica takes over without waiting (SIGTERM)."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.is_leader:
            await self._become(False)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.elector.release(), 5)
