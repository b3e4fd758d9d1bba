"""Deploy record repository and the DORA aggregates, computed in SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from storage.models import DeployKind, DeploymentRecord, DeployOutcome, Freeze
from storage.previews import PullRequestPreview


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


def running(session: Session, service: str, environment: str) -> RunningRollout | None:
    found = (
        session.execute(
            select(DeploymentRecord).where(
                col(DeploymentRecord.in_flight_key) == in_flight_key(service, environment)
            )
        )
        .scalars()
        .first()
    )
    if found is None:
        return None
    return RunningRollout(found.id or 0, found.version, found.actor, found.started_at)


def discard(session: Session, deployment_id: int) -> None:
    """Forget an in-progress record that no operation will ever run (a lost race)."""
    session.execute(
        delete(DeploymentRecord)
        .where(col(DeploymentRecord.id) == deployment_id)
        .where(col(DeploymentRecord.outcome) == DeployOutcome.IN_PROGRESS.value)
    )


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


def active_freeze(
    session: Session, environment: str, now: datetime, service: str | None = None
) -> Freeze | None:
    """The latest freeze in force on `environment` (for `service`: the environment's and the
    service's own; without it: the environment-wide ones only)."""
    scopes = [""] if service is None else ["", service]
    return (
        session.execute(
            select(Freeze)
            .where(col(Freeze.environment) == environment, col(Freeze.lifted_at).is_(None))
            .where(col(Freeze.service).in_(scopes))
            .where(or_(col(Freeze.ends_at).is_(None), col(Freeze.ends_at) > now))
            .order_by(col(Freeze.service), col(Freeze.created_at).desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


def active_freezes(session: Session, now: datetime) -> Sequence[Freeze]:
    """Every freeze set in Slack that is in force now, environment-wide and per service."""
    return (
        session.execute(
            select(Freeze)
            .where(col(Freeze.lifted_at).is_(None))
            .where(or_(col(Freeze.ends_at).is_(None), col(Freeze.ends_at) > now))
            .order_by(col(Freeze.environment), col(Freeze.service), col(Freeze.created_at))
        )
        .scalars()
        .all()
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


def median(seconds: list[Any]) -> tuple[timedelta | None, int]:
    """The standard median (the mean of the two middle values of an even count), to the whole
    second (SQLite's julianday arithmetic is exact to ~1 ms, so each value is rounded first)."""
    if not seconds:
        return None, 0
    ordered = sorted(round(float(v)) for v in seconds)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return timedelta(seconds=ordered[middle]), len(ordered)
    return timedelta(seconds=(ordered[middle - 1] + ordered[middle]) / 2), len(ordered)


def _first_commit_of_merge(d: type[DeploymentRecord]) -> Any:
    p = PullRequestPreview
    return (
        select(func.min(col(p.first_commit_at)))
        .where(
            col(p.merge_commit_sha) != "",
            func.length(col(d.commit_sha)) >= 7,
            # CI may report the short SHA (7+ characters) of the merge commit.
            col(p.merge_commit_sha).startswith(func.lower(col(d.commit_sha))),
        )
        .scalar_subquery()
    )


def dora(
    session: Session,
    services: Sequence[str],
    since: datetime,
    until: datetime,
    environments: Sequence[str] | None = None,
) -> DoraFigures:
    """The four keys in one pass of window functions per service and environment, counting
    only the events in `environments` (every environment when None).

    A change failed when its rollout failed, or when the next event for the same service and
    environment was a rollback (a rollback before any further deploy). Time to restore runs from
    a failed change to the earliest later success (deploy or rollback).
    """
    d = DeploymentRecord
    lane = (col(d.service), col(d.environment))
    events = (
        select(
            col(d.kind).label("kind"),
            col(d.outcome).label("outcome"),
            col(d.started_at).label("started_at"),
            col(d.finished_at).label("finished_at"),
            # A merged pull request's first commit, when the deploy carries its merge commit:
            # lead time for changes starts when the work started, not at the merge.
            func.coalesce(_first_commit_of_merge(d), col(d.commit_time)).label("commit_time"),
            func.lead(col(d.kind))
            .over(partition_by=lane, order_by=col(d.started_at))
            .label("next_kind"),
            # Newest first with a frame ending just before the row: a running minimum, which both
            # databases compute incrementally, over everything that came later.
            func.min(case((col(d.outcome) == DeployOutcome.SUCCEEDED.value, col(d.finished_at))))
            .over(partition_by=lane, order_by=col(d.started_at).desc(), rows=(None, -1))
            .label("restored_at"),
        )
        .where(
            col(d.service).in_(list(services)),
            col(d.started_at) >= since,
            col(d.started_at) < until,
            *([col(d.environment).in_(list(environments))] if environments is not None else []),
        )
        .subquery()
    )
    e = events.c
    failed = or_(e.outcome == DeployOutcome.FAILED.value, e.next_kind == DeployKind.ROLLBACK.value)
    # One pass over the lane's events; counting and medians of at most a few thousand numbers
    # happen here rather than re-running the window query once per figure.
    rows = session.execute(
        select(
            case((failed, 1), else_=0),
            case(
                (
                    e.outcome == DeployOutcome.SUCCEEDED.value,
                    _seconds(session, e.finished_at, e.commit_time),
                )
            ),
            _seconds(session, e.restored_at, func.coalesce(e.finished_at, e.started_at)),
        ).where(e.kind == DeployKind.DEPLOY.value, e.outcome != DeployOutcome.IN_PROGRESS.value)
    ).all()
    deploys = len(rows)
    failed_changes = sum(int(r[0]) for r in rows)
    lead_median, lead_samples = median([r[1] for r in rows if r[1] is not None])
    restore_median, restore_samples = median([r[2] for r in rows if r[0] and r[2] is not None])
    return DoraFigures(
        deploys=deploys,
        days=max((until - since).total_seconds() / 86400, 1e-9),
        failed_changes=failed_changes,
        lead_time_median=lead_median,
        lead_time_samples=lead_samples,
        restore_median=restore_median,
        restore_samples=restore_samples,
    )


def set_desired_state_commit(session: Session, deployment_id: int, commit: str) -> None:
    """GitOps delivery: the commit this deploy or rollback pushed (written once it is pushed)."""
    session.execute(
        update(DeploymentRecord)
        .where(col(DeploymentRecord.id) == deployment_id)
        .values(desired_state_commit=commit)
    )


def last_committed(session: Session, service: str, environment: str) -> DeploymentRecord | None:
    """The newest deploy or rollback of service+environment that pushed a desired-state commit."""
    return (
        session.execute(
            select(DeploymentRecord)
            .where(col(DeploymentRecord.service) == service)
            .where(col(DeploymentRecord.environment) == environment)
            .where(col(DeploymentRecord.desired_state_commit).is_not(None))
            .order_by(col(DeploymentRecord.started_at).desc(), col(DeploymentRecord.id).desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


def failed_since(session: Session, since: datetime, limit: int = 10) -> Sequence[DeploymentRecord]:
    """Deploys and rollbacks that failed after `since`, newest first."""
    return (
        session.execute(
            select(DeploymentRecord)
            .where(
                col(DeploymentRecord.outcome) == DeployOutcome.FAILED,
                col(DeploymentRecord.finished_at) >= since,
            )
            .order_by(col(DeploymentRecord.finished_at).desc())
            .limit(limit)
        )
        .scalars()
        .all()
    )
