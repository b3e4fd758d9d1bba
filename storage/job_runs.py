"""The database guard that a scheduled job's fire time runs once, whichever replica fires it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from storage.models import JobRun


def claim(
    session: Session, job_id: str, fire_time: datetime, now: datetime, replica: str
) -> int | None:
    """Record that this replica runs `job_id` for `fire_time`; None if someone already did."""
    run = JobRun(job_id=job_id, fire_time=fire_time, started_at=now, replica=replica)
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        return None
    return run.id


def finish(session: Session, run_id: int, now: datetime, outcome: str) -> None:
    session.execute(
        update(JobRun).where(col(JobRun.id) == run_id).values(finished_at=now, outcome=outcome)
    )
