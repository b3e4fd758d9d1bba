"""The durability contract of operations on real databases: owner, lease, heartbeat, recovery,
deadlines, and outcomes written through a database outage (docs/durability.md)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from core.clock import ManualClock, SystemClock
from core.operations import OperationRunner
from storage import operations as repo
from storage.db import Database
from storage.models import Operation, OperationState
from tests.tcp_proxy import TcpProxy

START = datetime(2026, 11, 24, tzinfo=UTC)


class Work:
    """A handler that counts its runs and waits until the test lets it finish."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def __call__(self, operation: Operation) -> dict[str, Any]:
        self.runs.append(operation.id)
        self.entered.set()
        await self.release.wait()
        return {"ran": len(self.runs)}


async def _settled(*runners: OperationRunner) -> None:
    """Wait until every task of these runners either ended or runs its handler."""
    for _ in range(500):
        if all(all(t.done() for t in r._tasks if t not in r._running.values()) for r in runners):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("runners did not settle")


def _replica(db: Database, clock: Any, name: str, work: Work, **kw: Any) -> OperationRunner:
    runner = OperationRunner(db, clock, owner=name, **kw)
    runner.register("test.work", work)
    return runner


async def _row(db: Database, operation_id: str) -> Operation:
    row = await db.run(lambda s: repo.get(s, operation_id))
    assert row is not None
    return row


async def test_a_starting_replica_does_not_take_a_live_operation(database: Database) -> None:
    clock = ManualClock(START)
    old_work, new_work = Work(), Work()
    old = _replica(database, clock, "pod-a/1", old_work, lease_seconds=30)
    new = _replica(database, clock, "pod-b/1", new_work, lease_seconds=30)

    submission = await old.submit("test.work", {}, idempotency_key="k1")
    await old_work.entered.wait()
    row = await _row(database, submission.operation.id)
    assert (row.state, row.owner) == (OperationState.RUNNING, "pod-a/1")

    # The new pod starts (start-up recovery) while the old one still runs it: hands off.
    assert await new.recover() == 0
    clock.advance(timedelta(seconds=20))
    await old.heartbeat()  # renews to 20 s + 30 s
    clock.advance(timedelta(seconds=20))
    assert await new.recover() == 0, "a renewed lease is not expired"
    assert new_work.runs == []

    old_work.release.set()
    await old.wait_idle()
    row = await _row(database, submission.operation.id)
    assert row.state == OperationState.SUCCEEDED and row.attempts == 1
    assert row.lease_expires_at is None


async def test_an_expired_lease_is_taken_over_once_and_the_old_runner_stops(
    database: Database,
) -> None:
    clock = ManualClock(START)
    old_work, new_work, third_work = Work(), Work(), Work()
    old = _replica(database, clock, "pod-a/1", old_work, lease_seconds=30)
    new = _replica(database, clock, "pod-b/1", new_work, lease_seconds=30)
    third = _replica(database, clock, "pod-c/1", third_work, lease_seconds=30)

    submission = await old.submit("test.work", {}, idempotency_key="k2")
    await old_work.entered.wait()
    # The old pod is partitioned from the database: no renewal for longer than the lease.
    clock.advance(timedelta(seconds=31))
    # Two replicas recover at the same moment: the guarded claim lets exactly one win.
    await asyncio.gather(new.recover(), third.recover())
    # Settled: the loser's task ended after its refused claim, the winner's runs the handler.
    await _settled(new, third)
    assert len(new_work.runs) + len(third_work.runs) == 1, "claimed by exactly one replica"
    winner, winner_work = (new, new_work) if new_work.runs else (third, third_work)

    # The old runner's next heartbeat sees it lost the lease and stops acting.
    await old.heartbeat()
    await old.wait_idle()
    assert len(old_work.runs) == 1
    row = await _row(database, submission.operation.id)
    assert row.state == OperationState.RUNNING and row.owner == winner.owner

    winner_work.release.set()
    old_work.release.set()
    await winner.wait_idle()
    row = await _row(database, submission.operation.id)
    assert row.state == OperationState.SUCCEEDED and row.attempts == 2
    # A late outcome from the old owner cannot overwrite the new one.
    refused = await database.run(
        lambda s: repo.finish(
            s, submission.operation.id, owner="pod-a/1", to=OperationState.FAILED, now=START
        )
    )
    assert refused is False


async def test_unrenewed_lease_stops_the_runner_while_the_database_is_down(
    postgres_url: str,
) -> None:
    proxy = TcpProxy("127.0.0.1", int(postgres_url.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    db = Database(postgres_url.replace(":5432/", f":{proxy.port}/"), workers=2)
    try:
        work = Work()
        runner = _replica(db, SystemClock(), "pod-a/1", work, lease_seconds=0.6)
        submission = await runner.submit("test.work", {}, idempotency_key="k3")
        await work.entered.wait()
        await proxy.cut()
        await runner.heartbeat()
        assert submission.operation.id in runner._running
        await asyncio.sleep(0.7)
        await runner.heartbeat()  # still down after a whole lease: another may take over
        await runner.wait_idle()
        assert runner._running == {}
        await proxy.restore()
        row = await _row(db, submission.operation.id)
        assert row.state == OperationState.RUNNING, "left for recovery, not half-finished"
    finally:
        await proxy.cut()
        db.close()


async def test_the_outcome_is_written_after_a_database_outage(postgres_url: str) -> None:
    proxy = TcpProxy("127.0.0.1", int(postgres_url.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    db = Database(postgres_url.replace(":5432/", f":{proxy.port}/"), workers=2)
    try:
        work = Work()
        runner = _replica(db, SystemClock(), "pod-a/1", work, lease_seconds=30)
        submission = await runner.submit("test.work", {}, idempotency_key="k4")
        await work.entered.wait()
        await proxy.cut()
        work.release.set()  # the result arrives while PostgreSQL is unreachable

        async def bring_back() -> None:
            await asyncio.sleep(1.5)
            await proxy.restore()

        await asyncio.gather(runner.wait_idle(), bring_back())
        row = await _row(db, submission.operation.id)
        assert row.state == OperationState.SUCCEEDED and row.result == {"ran": 1}
    finally:
        await proxy.cut()
        db.close()


async def test_an_operation_past_its_deadline_fails_and_the_user_is_told(
    database: Database,
) -> None:
    announced: list[tuple[str, str]] = []
    work = Work()
    runner = OperationRunner(database, SystemClock(), owner="pod-a/1")
    runner.register("test.slow", work, deadline=timedelta(seconds=0.3))

    async def announce(operation: Operation, reason: str) -> None:
        announced.append((operation.actor_user_id, reason))

    runner.announce = announce
    submission = await runner.submit(
        "test.slow", {}, idempotency_key="k5", actor_user_id="U0DEVELOPER"
    )
    await runner.wait_idle()
    row = await _row(database, submission.operation.id)
    assert row.state == OperationState.FAILED and "did not finish within" in row.error
    assert announced and announced[0][0] == "U0DEVELOPER"


async def test_recovery_runs_periodically_in_a_live_process(database: Database) -> None:
    clock = SystemClock()
    dead_work, live_work = Work(), Work()
    live_work.release.set()
    dead = _replica(database, clock, "pod-a/1", dead_work, lease_seconds=0.3)
    live = _replica(database, clock, "pod-b/1", live_work, lease_seconds=0.3)
    # pod-a accepted the operation and died before running it.
    submission = await dead.submit("test.work", {}, idempotency_key="k6", start=False)
    live.start_maintenance()
    try:
        for _ in range(200):
            row = await _row(database, submission.operation.id)
            if row.state == OperationState.SUCCEEDED:
                break
            await asyncio.sleep(0.05)
        assert row.state == OperationState.SUCCEEDED and row.owner == "pod-b/1"
        assert live_work.runs == [submission.operation.id] and dead_work.runs == []
    finally:
        await live.stop_maintenance()
        await live.wait_idle()
