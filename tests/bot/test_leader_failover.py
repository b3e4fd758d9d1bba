"""Two replicas as real processes on PostgreSQL, electing a scheduler leader with a PostgreSQL
advisory lock or a Kubernetes Lease (on the fake API server). Killing the leader in the middle
of a run hands the schedule over within the lease duration, finishes the interrupted fire time
once and never runs one twice; SIGTERM hands over at once after finishing the running job."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from integrations.sandbox.kube_api import FakeKube, RunningFakeKube
from tests.fixtures.slack import BOT_TOKEN, EXAMPLE_CATALOG, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3.0
"""Short for a quick test, long enough that a busy 2-core CI machine does not flap."""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Beat:
    slot: str
    replica: str
    phase: str


class Cluster:
    """Replicas of one deployment sharing a database and a heartbeat file."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.beats = tmp / "heartbeat.log"
        self.beats.touch()
        self.replicas: dict[str, Replica] = {}

    def start(self, name: str) -> Replica:
        port = _free_port()
        log = self.tmp / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.bot.replica", str(port)],
            cwd=ROOT,
            env={**self.env, "FORGEBOT_REPLICA": name},
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        replica = Replica(name, port, process, log)
        self.replicas[name] = replica
        return replica

    def read(self) -> list[Beat]:
        lines = self.beats.read_text(encoding="utf-8").splitlines()
        return [Beat(*line.split()) for line in lines if line.count(" ") == 2]

    def stop_all(self) -> None:
        for replica in self.replicas.values():
            if replica.process.poll() is None:
                replica.process.kill()
            replica.process.wait(10)


async def until(check: Callable[[], object], timeout: float, what: str) -> object:
    """Bounded polling on a condition (no sleeping to pass)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def leader_gauge(replica: Replica) -> float | None:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(replica.url + "/metrics") as response,
        ):
            text = await response.text()
    except aiohttp.ClientError:
        return None
    for line in text.splitlines():
        if line.startswith("forgebot_scheduler_leader "):
            return float(line.split()[1])
    return None


async def ready(replica: Replica) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(replica.url + "/readyz") as response,
        ):
            return response.status == 200
    except aiohttp.ClientError:
        return False


@pytest.fixture(params=["advisory-lock", "lease"])
def cluster(
    request: pytest.FixtureRequest,
    postgres_url: str,
    tmp_path: Path,
    fake_kube_server: RunningFakeKube,
    fake_kube: FakeKube,
) -> Iterator[Cluster]:
    # The session database is shared by the tests: start from no job history.
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DELETE FROM job_runs")
        conn.execute("DROP TABLE IF EXISTS apscheduler_jobs")
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "FORGEBOT_DATABASE_URL": postgres_url,
        "FORGEBOT_CATALOG": str(EXAMPLE_CATALOG),
        "FORGEBOT_LEADER_ELECTION": request.param,
        "FORGEBOT_LEASE_SECONDS": str(LEASE_SECONDS),
        "FORGEBOT_LEASE_NAMESPACE": "default",
        "FORGEBOT_LOG_LEVEL": "INFO",
        "FORGEBOT_TEST_HEARTBEAT": str(tmp_path / "heartbeat.log"),
        "FORGEBOT_TEST_JOB_SECONDS": "0.5",
        "FORGEBOT_SHUTDOWN_SECONDS": "5",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    if request.param == "lease":
        kubeconfig = fake_kube_server.write_kubeconfig(tmp_path / "kubeconfig", ["dev-cluster"])
        env |= {"KUBECONFIG": str(kubeconfig), "FORGEBOT_LEASE_CONTEXT": "dev-cluster"}
    else:
        env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
    running = Cluster(tmp_path, env)
    yield running
    running.stop_all()
    for replica in running.replicas.values():  # shown by pytest when the test failed
        print(f"--- {replica.name}\n{replica.log.read_text()[-4000:]}")


async def _elect(cluster: Cluster) -> tuple[Replica, Replica]:
    a, b = cluster.start("replica-a"), cluster.start("replica-b")

    seen: list[tuple[Replica, Replica]] = []

    async def one_leader() -> bool:
        # Both ready, and the same leader on consecutive looks (start-up is CPU-heavy on a
        # small machine, and a starved first leader may lose its short test lease).
        if not all([await ready(r) for r in (a, b)]):
            return False
        gauges = [await leader_gauge(r) for r in (a, b)]
        if None in gauges or sum(g or 0 for g in gauges) != 1:
            seen.clear()
            return False
        seen.append((a, b) if gauges[0] == 1 else (b, a))
        return len(seen) >= 10 and len({leader.name for leader, _ in seen[-10:]}) == 1

    await until(one_leader, 60, "one stable leader among two ready replicas")
    return seen[-1]


def _check_every_fire_time_finished_once(beats: list[Beat], leader: Replica) -> None:
    ends = Counter(b.slot for b in beats if b.phase == "end")
    doubled = [slot for slot, count in ends.items() if count > 1]
    assert not doubled, f"fire times run twice: {doubled}"
    started = {b.slot for b in beats if b.phase == "start"}
    unfinished = started - set(ends)
    # The live leader may be running its newest fire time right now. That start is not always
    # the last line: a fire time the previous leader left, caught up at the takeover, can end
    # after the next one started.
    leaders_starts = [b for b in beats if b.phase == "start" and b.replica == leader.name]
    if leaders_starts:
        unfinished.discard(leaders_starts[-1].slot)
    assert not unfinished, f"fire times started and never finished: {unfinished}"


@pytest.mark.postgres
async def test_killing_the_leader_mid_run_hands_over_without_losing_or_doubling(
    cluster: Cluster,
) -> None:
    leader, follower = await _elect(cluster)
    await until(lambda: len([b for b in cluster.read() if b.phase == "end"]) >= 2, 15, "two runs")

    def mid_run() -> Beat | None:
        beats = cluster.read()
        last = beats[-1] if beats else None
        return last if last is not None and last.phase == "start" else None

    interrupted = await until(mid_run, 10, "the leader in the middle of a run")
    assert isinstance(interrupted, Beat) and interrupted.replica == leader.name
    leader.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    leader.process.wait(10)

    def finished_by_follower(slot: str) -> Callable[[], bool]:
        return lambda: any(
            b.slot == slot and b.phase == "end" and b.replica == follower.name
            for b in cluster.read()
        )

    await until(finished_by_follower(interrupted.slot), 4 * LEASE_SECONDS + 5, "a takeover")
    took = time.monotonic() - killed_at
    # Within the lease duration, plus a retry period and the re-run itself (0.5 s).
    assert took < LEASE_SECONDS + LEASE_SECONDS / 5 + 0.5 + 1.5, took
    assert await leader_gauge(follower) == 1
    ends_before = len([b for b in cluster.read() if b.phase == "end"])
    await until(
        lambda: len([b for b in cluster.read() if b.phase == "end"]) >= ends_before + 3,
        10,
        "the new leader keeping the schedule",
    )
    beats = cluster.read()
    _check_every_fire_time_finished_once(beats, follower)
    # After the takeover only the new leader runs jobs.
    takeover = next(i for i, b in enumerate(beats) if b.replica == follower.name)
    assert all(b.replica == follower.name for b in beats[takeover:])


@pytest.mark.postgres
async def test_sigterm_finishes_the_running_job_and_hands_over_at_once(
    cluster: Cluster,
) -> None:
    leader, follower = await _elect(cluster)

    def mid_run() -> Beat | None:
        beats = cluster.read()
        last = beats[-1] if beats else None
        return last if last is not None and last.phase == "start" else None

    running = await until(mid_run, 15, "the leader in the middle of a run")
    assert isinstance(running, Beat)
    leader.process.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    assert await asyncio.to_thread(leader.process.wait, 15) == 0
    beats = cluster.read()
    assert any(
        b.slot == running.slot and b.phase == "end" and b.replica == leader.name for b in beats
    ), "the running job was finished before exiting"
    await until(lambda: leader_gauge(follower), 10, "the follower to answer")

    async def follower_leads() -> bool:
        return await leader_gauge(follower) == 1

    await until(follower_leads, LEASE_SECONDS, "an immediate handover (released lease)")
    assert time.monotonic() - stopped_at < 15
    await until(
        lambda: any(b.replica == follower.name and b.phase == "end" for b in cluster.read()),
        5,
        "the follower running the schedule",
    )
    _check_every_fire_time_finished_once(cluster.read(), follower)
