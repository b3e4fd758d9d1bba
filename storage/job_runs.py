"""The database guard that a scheduled job's fire time runs once, whichever replica fires it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
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


def unfinished(
    session: Session, job_ids: list[str], *, exclude: set[int]
) -> list[tuple[int, str, datetime]]:
    """Runs of these jobs that were started and never finished (their replica died or stepped
    down mid-run), oldest first: (run id, job id, fire time)."""
    rows = session.execute(
        select(col(JobRun.id), col(JobRun.job_id), col(JobRun.fire_time))
        .where(col(JobRun.finished_at).is_(None), col(JobRun.job_id).in_(job_ids))
        .order_by(col(JobRun.fire_time))
    ).all()
    return [(int(r[0]), str(r[1]), r[2]) for r in rows if r[0] not in exclude]


def claim_over(session: Session, run_id: int, now: datetime, replica: str) -> bool:
    """Take an unfinished run over; exactly one of several new leaders succeeds."""
    current = session.execute(
        select(col(JobRun.replica), col(JobRun.started_at)).where(
            col(JobRun.id) == run_id, col(JobRun.finished_at).is_(None)
        )
    ).first()
    if current is None:
        return False
    result = session.execute(
        update(JobRun)
        .where(
            col(JobRun.id) == run_id,
            col(JobRun.finished_at).is_(None),
            col(JobRun.replica) == current[0],
            col(JobRun.started_at) == current[1],
        )
        .values(replica=replica, started_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def latest_slot(session: Session, job_id: str) -> datetime | None:
    found: datetime | None = session.execute(
        select(func.max(col(JobRun.fire_time))).where(col(JobRun.job_id) == job_id)
    ).scalar_one_or_none()
    return found
