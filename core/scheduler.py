"""Scheduled work: APScheduler with its job store in the bot's own database.

APScheduler 3's SQLAlchemy job store is synchronous, so the scheduler runs on its own thread
(`BackgroundScheduler`) and hands each job to the bot's event loop. Jobs are persistent: after
downtime a missed run is coalesced into one catch-up run. Every run first claims its *slot*
(the fire time on the job's grid) in `job_runs`, so a restart, a catch-up or a second replica
never runs the same slot twice. Only the leader replica starts the scheduler (see `leader`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from core import metrics
from core.clock import Clock
from storage import job_runs
from storage.db import Database

log = logging.getLogger(__name__)

JobBody = Callable[[datetime], Awaitable[None]]
"""A job receives its slot (the fire time it stands for) and does its work."""

_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
# APScheduler stores jobs by reference to a module-level function; that function finds the
# live scheduler through this registry (weak, so tests and restarts leave nothing behind).
_LIVE: weakref.WeakValueDictionary[str, Scheduler] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    every: timedelta
    body: JobBody

    def slot(self, now: datetime) -> datetime:
        steps = (now - _EPOCH) // self.every
        return _EPOCH + steps * self.every


def _trampoline(scheduler_id: str, job_id: str) -> None:
    scheduler = _LIVE.get(scheduler_id)
    if scheduler is None:
        return
    scheduler.fire(job_id)


class Scheduler:
    def __init__(self, db: Database, clock: Clock, *, replica: str | None = None) -> None:
        self._db = db
        self._clock = clock
        self.replica = replica or socket.gethostname()
        self._jobs: dict[str, JobSpec] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._id = "forgebot"
        self.running_tasks: set[asyncio.Task[bool]] = set()
        self._running_runs: set[int] = set()
        self._firing = False

    def add(self, spec: JobSpec) -> None:
        if spec.job_id in self._jobs:
            raise ValueError(f"job {spec.job_id} added twice")
        self._jobs[spec.job_id] = spec

    @property
    def jobs(self) -> dict[str, JobSpec]:
        return dict(self._jobs)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start on the scheduler thread. Call from a thread, not the loop: the job store
        writes to the database while it starts."""
        self._loop = loop
        _LIVE[self._id] = self
        scheduler = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self._db.engine, tablename="apscheduler_jobs")
            },
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        for spec in self._jobs.values():
            scheduler.add_job(
                _trampoline,
                trigger=IntervalTrigger(seconds=spec.every.total_seconds(), start_date=_EPOCH),
                args=[self._id, spec.job_id],
                id=spec.job_id,
                name=spec.job_id,
                replace_existing=True,
            )
        self._firing = True
        scheduler.start()
        self._scheduler = scheduler

    def shutdown(self) -> None:
        # A fire already on its way to the loop is dropped: the next leader runs that slot.
        self._firing = False
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def take_over(self) -> int:
        """On becoming the leader: finish what a previous leader left, then start firing.

        A run a dead (or deposed) leader started but never finished is re-run for the same
        fire time, claimed over with a guarded update; a job whose current fire time nobody
        ran yet (the leader died before it) runs once now, coalescing what was missed, instead
        of waiting for its next fire time. Claims are made here, the runs go on in the
        background (the election loop must keep renewing meanwhile). Returns how many."""
        here = set(self._running_runs)
        adopted = await self._db.run(
            lambda s: job_runs.unfinished(s, list(self._jobs), exclude=here)
        )
        started = 0
        for run_id, job_id, fire_time in adopted:
            if await self._claim_over(run_id):
                log.info("re-running %s for %s, left unfinished", job_id, fire_time.isoformat())
                self._track(job_id, self._execute(job_id, run_id, fire_time))
                started += 1
        for job_id, spec in self._jobs.items():
            now = self._clock.now()
            last = await self._latest_slot(job_id)
            if last is not None and last < spec.slot(now):
                claimed = await self._claim(job_id, spec.slot(now), now)
                if claimed is not None:
                    self._track(job_id, self._execute(job_id, claimed, spec.slot(now)))
                    started += 1
        await asyncio.to_thread(self.start, asyncio.get_running_loop())
        return started

    def _track(self, job_id: str, run: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(run, name=f"job-{job_id}")
        self.running_tasks.add(task)
        task.add_done_callback(self.running_tasks.discard)

    async def wait_idle(self) -> None:
        """Wait until no job runs here (tests)."""
        while self.running_tasks:
            await asyncio.gather(*list(self.running_tasks), return_exceptions=True)

    async def _latest_slot(self, job_id: str) -> datetime | None:
        return await self._db.run(lambda s: job_runs.latest_slot(s, job_id))

    async def step_down(self, grace: float = 0.0) -> None:
        """Stop firing; give running jobs `grace` seconds, then interrupt them: the next
        leader re-runs an interrupted run for the same fire time."""
        await asyncio.to_thread(self.shutdown)
        running = [t for t in self.running_tasks if not t.done()]
        if running and grace > 0:
            _, still = await asyncio.wait(running, timeout=grace)
            running = list(still)
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def fire(self, job_id: str) -> None:
        """Called on the scheduler thread: run the job on the bot's loop."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._spawn, job_id)

    def _spawn(self, job_id: str) -> None:
        if self._firing:
            self._track(job_id, self.run_now(job_id))

    async def run_now(self, job_id: str, now: datetime | None = None) -> bool:
        """Run one slot of a job if no replica ran it yet. True if it ran here."""
        spec = self._jobs[job_id]
        current = now or self._clock.now()
        slot = spec.slot(current)
        run_id = await self._claim(job_id, slot, current)
        if run_id is None:
            metrics.JOB_RUNS.labels(job_id, "skipped").inc()
            return False
        await self._execute(job_id, run_id, slot)
        return True

    async def _claim_over(self, run_id: int) -> bool:
        now = self._clock.now()
        return await self._db.run(lambda s: job_runs.claim_over(s, run_id, now, self.replica))

    async def _claim(self, job_id: str, slot: datetime, now: datetime) -> int | None:
        return await self._db.run(lambda s: job_runs.claim(s, job_id, slot, now, self.replica))

    async def _execute(self, job_id: str, run_id: int, slot: datetime) -> None:
        spec = self._jobs[job_id]
        outcome = "ok"
        self._running_runs.add(run_id)
        try:
            await spec.body(slot)
        except asyncio.CancelledError:
            # Stepping down: leave the run unfinished, so the next leader re-runs it.
            outcome = "interrupted"
            raise
        except Exception:
            outcome = "failed"
            log.exception("scheduled job %s failed for slot %s", job_id, slot.isoformat())
        finally:
            self._running_runs.discard(run_id)
            metrics.JOB_RUNS.labels(job_id, outcome).inc()
            if outcome != "interrupted":
                finished = self._clock.now()
                await self._db.run(lambda s: job_runs.finish(s, run_id, finished, outcome))
