"""Deploy record repository and the DORA aggregates, computed in SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from storage.models import DeployKind, DeploymentRecord, DeployOutcome, Freeze


@dataclass(frozen=True)
class RunningRollout:
    id: int
    version: str
    actor: str
    started_at: datetime


class RolloutInProgress(Exception):
    """Carries plain values: the session that found the running rollout is rolled back."""

    def __init__(self, existing: RunningRollout | None) -> None:
        super().__init__("a rollout is already in progress")
        self.existing = existing


def in_flight_key(service: str, environment: str) -> str:
    return f"{service}/{environment}"


def start(session: Session, record: DeploymentRecord) -> DeploymentRecord:
    """Insert an in-progress rollout; refuse if one is already running for service+env."""
    record.outcome = DeployOutcome.IN_PROGRESS
    record.in_flight_key = in_flight_key(record.service, record.environment)
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        existing = (
            session.execute(
                select(DeploymentRecord).where(
                    col(DeploymentRecord.in_flight_key) == record.in_flight_key
                )
            )
            .scalars()
            .first()
        )
        running = (
            RunningRollout(existing.id or 0, existing.version, existing.actor, existing.started_at)
            if existing is not None
            else None
        )
        raise RolloutInProgress(running) from None
    return record


def finish(
    session: Session,
    deployment_id: int,
    *,
    outcome: DeployOutcome,
    now: datetime,
    failure_reason: str = "",
    **changes: Any,
) -> bool:
    result = session.execute(
        update(DeploymentRecord)
        .where(col(DeploymentRecord.id) == deployment_id)
        .where(col(DeploymentRecord.outcome) == DeployOutcome.IN_PROGRESS.value)
        .values(
            outcome=outcome.value,
            finished_at=now,
            failure_reason=failure_reason,
            in_flight_key=None,
            **changes,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def record_finished(session: Session, record: DeploymentRecord) -> DeploymentRecord:
    """A deploy that already happened elsewhere (reported by CI/CD)."""
    record.in_flight_key = None
    session.add(record)
    session.flush()
    return record


def get(session: Session, deployment_id: int) -> DeploymentRecord | None:
    return session.get(DeploymentRecord, deployment_id)


def in_progress(session: Session) -> Sequence[DeploymentRecord]:
    return (
        session.execute(
            select(DeploymentRecord).where(
                col(DeploymentRecord.outcome) == DeployOutcome.IN_PROGRESS.value
            )
        )
        .scalars()
        .all()
    )


def history(
    session: Session, service: str, environment: str, limit: int = 20
) -> Sequence[DeploymentRecord]:
    return (
        session.execute(
            select(DeploymentRecord)
            .where(
                col(DeploymentRecord.service) == service,
                col(DeploymentRecord.environment) == environment,
            )
            .order_by(col(DeploymentRecord.started_at).desc(), col(DeploymentRecord.id).desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )


def last_deploy_since(
    session: Session, service: str, environment: str, since: datetime
) -> DeploymentRecord | None:
    return (
        session.execute(
            select(DeploymentRecord)
            .where(
                col(DeploymentRecord.service) == service,
                col(DeploymentRecord.environment) == environment,
                col(DeploymentRecord.started_at) >= since,
            )
            .order_by(col(DeploymentRecord.started_at).desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


# --- freezes ---------------------------------------------------------------------------------


def active_freeze(session: Session, environment: str, now: datetime) -> Freeze | None:
    return (
        session.execute(
            select(Freeze)
            .where(col(Freeze.environment) == environment, col(Freeze.lifted_at).is_(None))
            .where(or_(col(Freeze.ends_at).is_(None), col(Freeze.ends_at) > now))
            .order_by(col(Freeze.created_at).desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


def add_freeze(session: Session, freeze: Freeze) -> Freeze:
    session.add(freeze)
    session.flush()
    return freeze


def lift_freezes(session: Session, environment: str, now: datetime, by: str) -> int:
    result = session.execute(
        update(Freeze)
        .where(col(Freeze.environment) == environment, col(Freeze.lifted_at).is_(None))
        .where(or_(col(Freeze.ends_at).is_(None), col(Freeze.ends_at) > now))
        .values(lifted_at=now, lifted_by=by)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- DORA --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DoraFigures:
    deploys: int
    days: float
    failed_changes: int
    lead_time_median: timedelta | None
    lead_time_samples: int
    restore_median: timedelta | None
    restore_samples: int


def _seconds(session: Session, later: Any, earlier: Any) -> ColumnElement[float]:
    """Seconds between two timestamp expressions, in the session's dialect."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * literal(86400.0)
    return func.extract("epoch", later - earlier)  # type: ignore[return-value]


def _median(session: Session, durations: Any, where: Sequence[Any]) -> tuple[timedelta | None, int]:
    """Median by ORDER BY ... OFFSET count/2: one portable query plan on both databases."""
    count = session.execute(
        select(func.count()).select_from(DeploymentRecord).where(*where)
    ).scalar_one()
    if not count:
        return None, 0
    value = session.execute(
        select(durations)
        .select_from(DeploymentRecord)
        .where(*where)
        .order_by(durations)
        .offset(count // 2)
        .limit(1)
    ).scalar_one()
    # SQLite's julianday arithmetic is exact to about a millisecond; durations are whole seconds.
    return timedelta(seconds=round(float(value))), int(count)


def dora(
    session: Session, services: Sequence[str], since: datetime, until: datetime
) -> DoraFigures:
    d = DeploymentRecord
    in_scope = [
        col(d.service).in_(list(services)),
        col(d.started_at) >= since,
        col(d.started_at) < until,
        col(d.kind) == DeployKind.DEPLOY.value,
    ]
    finished = [*in_scope, col(d.outcome) != DeployOutcome.IN_PROGRESS.value]
    deploys = session.execute(select(func.count()).select_from(d).where(*finished)).scalar_one()

    # A change failed when its rollout failed, or when a rollback of the same service and
    # environment followed it before the next deploy did.
    later = aliased(DeploymentRecord)
    between = aliased(DeploymentRecord)
    # Correlation is explicit: the inner NOT EXISTS refers to rows two levels up.
    deploy_between = (
        select(literal(1))
        .where(
            col(between.service) == col(d.service),
            col(between.environment) == col(d.environment),
            col(between.kind) == DeployKind.DEPLOY.value,
            col(between.started_at) > col(d.started_at),
            col(between.started_at) < col(later.started_at),
        )
        .correlate_except(between)
    )
    rolled_back = exists(
        select(literal(1))
        .where(
            col(later.service) == col(d.service),
            col(later.environment) == col(d.environment),
            col(later.kind) == DeployKind.ROLLBACK.value,
            col(later.started_at) > col(d.started_at),
            ~exists(deploy_between),
        )
        .correlate_except(later)
    )
    failed_condition = or_(col(d.outcome) == DeployOutcome.FAILED.value, rolled_back)
    failed = session.execute(
        select(func.count()).select_from(d).where(*finished, failed_condition)
    ).scalar_one()

    lead = _seconds(session, col(d.finished_at), col(d.commit_time))
    lead_median, lead_samples = _median(
        session,
        lead,
        [
            *finished,
            col(d.outcome) == DeployOutcome.SUCCEEDED.value,
            col(d.commit_time).is_not(None),
        ],
    )

    # Time to restore: from a failed change to the next successful deploy or rollback.
    recovery = aliased(DeploymentRecord)
    restored_at = (
        select(func.min(recovery.finished_at))
        .where(
            col(recovery.service) == col(d.service),
            col(recovery.environment) == col(d.environment),
            col(recovery.started_at) > col(d.started_at),
            col(recovery.outcome) == DeployOutcome.SUCCEEDED.value,
        )
        .correlate(d)
        .scalar_subquery()
    )
    restore = _seconds(session, restored_at, func.coalesce(d.finished_at, col(d.started_at)))
    restore_median, restore_samples = _median(
        session, restore, [*finished, failed_condition, restored_at.is_not(None)]
    )
    return DoraFigures(
        deploys=int(deploys),
        days=max((until - since).total_seconds() / 86400, 1e-9),
        failed_changes=int(failed),
        lead_time_median=lead_median,
        lead_time_samples=lead_samples,
        restore_median=restore_median,
        restore_samples=restore_samples,
    )
