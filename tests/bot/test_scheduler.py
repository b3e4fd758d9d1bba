"""The scheduler on a real database: APScheduler's job store lives there, and a slot runs once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from core.clock import ManualClock
from core.scheduler import JobSpec, Scheduler
from storage.db import Database

T0 = datetime(2026, 11, 24, 9, 0, 30, tzinfo=UTC)


async def test_a_slot_runs_once_across_replicas(database: Database) -> None:
    clock = ManualClock(T0)
    ran: list[tuple[str, datetime]] = []

    def make(replica: str) -> Scheduler:
        scheduler = Scheduler(database, clock, replica=replica)

        async def body(slot: datetime) -> None:
            ran.append((replica, slot))

        scheduler.add(JobSpec("ttl-sweep", timedelta(minutes=5), body))
        return scheduler

    a, b = make("a"), make("b")
    results = await asyncio.gather(a.run_now("ttl-sweep"), b.run_now("ttl-sweep"))
    assert sorted(results) == [False, True]
    assert len(ran) == 1 and ran[0][1] == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    clock.advance(timedelta(minutes=2))
    assert await a.run_now("ttl-sweep") is False, "same 5-minute slot"
    clock.advance(timedelta(minutes=3))
    assert await b.run_now("ttl-sweep") is True
    assert [slot.minute for _, slot in ran] == [0, 5]


async def test_failures_are_recorded_and_do_not_stop_the_scheduler(database: Database) -> None:
    scheduler = Scheduler(database, ManualClock(T0), replica="a")

    async def broken(slot: datetime) -> None:
        raise RuntimeError("cluster unreachable")

    scheduler.add(JobSpec("broken", timedelta(minutes=1), broken))
    assert await scheduler.run_now("broken") is True
    outcome = database.run_sync(
        lambda s: s.execute(text("SELECT outcome FROM job_runs")).scalar_one()
    )
    assert outcome == "failed"


async def test_apscheduler_fires_jobs_from_its_database_store(database: Database) -> None:
    fired = asyncio.Event()
    scheduler = Scheduler(database, ManualClock(T0), replica="a")

    async def body(slot: datetime) -> None:
        fired.set()

    scheduler.add(JobSpec("tick", timedelta(seconds=1), body))
    await asyncio.to_thread(scheduler.start, asyncio.get_running_loop())
    try:
        await asyncio.wait_for(fired.wait(), timeout=5)
        stored = database.run_sync(
            lambda s: s.execute(text("SELECT id FROM apscheduler_jobs")).scalars().all()
        )
        assert stored == ["tick"]
    finally:
        await asyncio.to_thread(scheduler.shutdown)
