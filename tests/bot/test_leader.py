"""Scheduler leader election: a Kubernetes Lease on the fake API server, a PostgreSQL advisory
lock on the real server, and the election loop's rules (step down in time, release on stop)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from sqlalchemy import text

from bot.leader import AdvisoryLockElector, Leadership, LeaseElector
from core.clock import ManualClock
from core.scheduler import JobSpec, Scheduler
from integrations.sandbox.kube_api import FakeKube
from storage import job_runs
from storage.db import Database
from tests.tcp_proxy import TcpProxy


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lease(kubeconfig: Path, identity: str, clock: Monotonic) -> LeaseElector:
    return LeaseElector(
        identity,
        name="forgebot-scheduler",
        namespace="default",
        lease_seconds=15,
        kubeconfig=str(kubeconfig),
        context="dev-cluster",
        monotonic=clock,
    )


async def test_one_lease_holder_and_takeover_after_the_lease_duration(
    kubeconfig: Path, fake_kube: FakeKube
) -> None:
    clock_a, clock_b = Monotonic(), Monotonic()
    a, b = _lease(kubeconfig, "replica-a", clock_a), _lease(kubeconfig, "replica-b", clock_b)
    assert await a.try_acquire() is True
    assert await b.try_acquire() is False
    lease = fake_kube.find("leases", "default", "forgebot-scheduler")
    assert lease is not None and lease["spec"]["holderIdentity"] == "replica-a"
    assert lease["spec"]["leaseDurationSeconds"] == 15

    # A renews: B sees a new resourceVersion and restarts its expiry clock.
    clock_b.now += 14
    assert await a.try_acquire() is True
    assert await b.try_acquire() is False
    clock_b.now += 14
    assert await b.try_acquire() is False, "renewed 14 s ago by B's own clock"
    # A stops renewing (it died): after the lease duration B takes over.
    clock_b.now += 1.5
    assert await b.try_acquire() is True
    taken = fake_kube.find("leases", "default", "forgebot-scheduler")
    assert taken is not None and taken["spec"]["holderIdentity"] == "replica-b"
    assert taken["spec"]["leaseTransitions"] == 1
    assert await a.try_acquire() is False, "A is told it lost the lease"
    await a.release()  # not the holder: changes nothing
    assert await b.try_acquire() is True
    await b.release()
    released = fake_kube.find("leases", "default", "forgebot-scheduler")
    assert released is not None and released["spec"].get("holderIdentity") is None
    assert await a.try_acquire() is True, "a released lease is taken at once"
    await a.release()


async def test_the_fake_api_server_refuses_a_stale_lease_write(
    kubeconfig: Path, fake_kube: FakeKube
) -> None:
    elector = _lease(kubeconfig, "replica-a", Monotonic())
    assert await elector.try_acquire() is True
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), context="dev-cluster", client_configuration=configuration
    )
    with client.ApiClient(configuration) as api:
        leases = client.CoordinationV1Api(api)
        current = leases.read_namespaced_lease("forgebot-scheduler", "default")
        stale = current.metadata.resource_version
        assert await elector.try_acquire() is True  # a renewal moves the resourceVersion on
        body = {
            "metadata": {"name": "forgebot-scheduler", "resourceVersion": stale},
            "spec": {"holderIdentity": "replica-b", "leaseDurationSeconds": 15},
        }
        with pytest.raises(ApiException) as raised:
            await asyncio.to_thread(
                leases.replace_namespaced_lease, "forgebot-scheduler", "default", body
            )
        assert raised.value.status == 409
        with pytest.raises(ApiException) as duplicate:
            await asyncio.to_thread(leases.create_namespaced_lease, "default", body)
        assert duplicate.value.status == 409
    await elector.release()


@pytest.fixture
async def pg_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    yield proxy
    await proxy.cut()


async def _eventually(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.postgres
async def test_advisory_lock_is_exclusive_and_freed_when_the_holder_s_session_dies(
    postgres_url: str, pg_proxy: TcpProxy
) -> None:
    key = 4242_0001
    through_proxy = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{pg_proxy.port}")
    a = AdvisoryLockElector(through_proxy, key=key, timeout=2)
    b = AdvisoryLockElector(postgres_url, key=key, timeout=2)
    try:
        assert await a.try_acquire() is True
        assert await a.try_acquire() is True, "renewing keeps it"
        assert await b.try_acquire() is False
        await pg_proxy.cut()  # A's connection dies, as when its pod is killed
        with pytest.raises(Exception):  # noqa: B017 - any connectivity error
            await a.try_acquire()
        await _eventually(b.try_acquire)
        await pg_proxy.restore()
        assert await a.try_acquire() is False, "B holds it now"
        await b.release()
        await _eventually(a.try_acquire)
    finally:
        await a.release()
        await b.release()


class ScriptedElector:
    kind = "scripted"

    def __init__(self) -> None:
        self.answer: bool | Exception = True
        self.released = 0

    async def try_acquire(self) -> bool:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def release(self) -> None:
        self.released += 1


async def test_leader_steps_down_when_it_cannot_renew_in_time_or_loses() -> None:
    events: list[str] = []
    clock = Monotonic()
    elector = ScriptedElector()

    async def elected() -> None:
        events.append("elected")

    async def deposed() -> None:
        events.append("deposed")

    leadership = Leadership(
        elector, on_elected=elected, on_deposed=deposed, lease_seconds=15, monotonic=clock
    )
    await leadership.step()
    assert leadership.is_leader and events == ["elected"]
    elector.answer = ConnectionError("API server unreachable")
    clock.now += 5
    await leadership.step()
    assert leadership.is_leader, "a failed renewal within the deadline keeps the leadership"
    clock.now += 5.1  # 10.1 s since the last renewal: past 2/3 of 15 s
    await leadership.step()
    assert not leadership.is_leader and events == ["elected", "deposed"]
    elector.answer = True
    await leadership.step()
    elector.answer = False  # someone else holds it: step down at once
    await leadership.step()
    assert events == ["elected", "deposed", "elected", "deposed"]
    elector.answer = True
    await leadership.step()
    await leadership.stop()
    assert events[-1] == "deposed" and elector.released == 1


T0 = datetime(2026, 11, 24, 9, 0, 30, tzinfo=UTC)


async def test_a_new_leader_reruns_an_interrupted_run_and_a_missed_slot(
    database: Database,
) -> None:
    clock = ManualClock(T0)
    ran: list[tuple[str, datetime]] = []
    started = asyncio.Event()

    def make(replica: str, *, hang: bool) -> Scheduler:
        scheduler = Scheduler(database, clock, replica=replica)

        async def body(slot: datetime) -> None:
            ran.append((replica, slot))
            started.set()
            if hang:
                await asyncio.Event().wait()

        scheduler.add(JobSpec("sweep", timedelta(minutes=1), body))
        return scheduler

    old, new = make("old", hang=True), make("new", hang=False)
    running = asyncio.create_task(old.run_now("sweep"))
    await started.wait()
    running.cancel()  # the old leader dies mid-run: the run stays unfinished
    with pytest.raises(asyncio.CancelledError):
        await running
    clock.advance(timedelta(minutes=2))  # and a whole slot passes without a leader
    try:
        assert await new.take_over() == 2
        await new.wait_idle()
    finally:
        await new.step_down()
    assert ran == [
        ("old", datetime(2026, 11, 24, 9, 0, tzinfo=UTC)),
        ("new", datetime(2026, 11, 24, 9, 0, tzinfo=UTC)),
        ("new", datetime(2026, 11, 24, 9, 2, tzinfo=UTC)),
    ]
    rows = database.run_sync(
        lambda s: s.execute(
            text("SELECT fire_time, replica, outcome FROM job_runs ORDER BY fire_time")
        ).all()
    )
    assert [(r[1], r[2]) for r in rows] == [("new", "ok"), ("new", "ok")]
    assert database.run_sync(lambda s: job_runs.unfinished(s, ["sweep"], exclude=set())) == []
    assert await new.take_over() == 0, "nothing left: a second election runs nothing again"
    await new.step_down()


@pytest.mark.parametrize(
    ("database_url", "mode", "in_cluster", "context", "expected"),
    [
        ("sqlite:///x.db", "auto", True, None, "always"),
        ("postgresql://u@h/db", "auto", False, None, "advisory-lock"),
        ("postgresql://u@h/db", "auto", True, None, "lease"),
        ("postgresql://u@h/db", "auto", False, "dev-cluster", "lease"),
        ("postgresql://u@h/db", "always", True, None, "always"),
        ("postgresql://u@h/db", "advisory-lock", True, None, "advisory-lock"),
    ],
)
def test_the_election_follows_where_the_bot_runs(
    database_url: str, mode: str, in_cluster: bool, context: str | None, expected: str
) -> None:
    from bot.leader import build_elector
    from core.config import Settings

    settings = Settings(
        FORGEBOT_DATABASE_URL=database_url,
        FORGEBOT_LEADER_ELECTION=mode,
        FORGEBOT_LEASE_CONTEXT=context,
        FORGEBOT_LEASE_NAMESPACE="forgebot",
        _env_file=None,
    )
    elector = build_elector(settings, "pod-1", in_cluster=in_cluster)
    assert elector.kind == expected
    if isinstance(elector, LeaseElector):
        assert (elector.namespace, elector.name, elector.identity) == (
            "forgebot",
            "forgebot-scheduler",
            "pod-1",
        )


def test_advisory_lock_on_sqlite_is_refused() -> None:
    from bot.leader import build_elector
    from core.config import Settings

    settings = Settings(
        FORGEBOT_DATABASE_URL="sqlite:///x.db",
        FORGEBOT_LEADER_ELECTION="advisory-lock",
        _env_file=None,
    )
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        build_elector(settings, "pod-1", in_cluster=False)
