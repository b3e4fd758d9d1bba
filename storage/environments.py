"""Environments repository. State only moves through `transition` (guarded UPDATE)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import LIVE_ENV_STATES, EnvironmentRecord, EnvState


class NameTaken(Exception):
    pass


def insert(session: Session, record: EnvironmentRecord) -> EnvironmentRecord:
    record.live_name = record.name
    try:
        with session.begin_nested():
            session.add(record)
            session.flush()
    except IntegrityError:
        raise NameTaken(record.name) from None
    return record


def get(session: Session, env_id: int) -> EnvironmentRecord | None:
    return session.get(EnvironmentRecord, env_id)


def live_by_name(session: Session, name: str) -> EnvironmentRecord | None:
    return session.exec(
        select(EnvironmentRecord).where(EnvironmentRecord.live_name == name)
    ).first()


def latest_by_name(session: Session, name: str) -> EnvironmentRecord | None:
    """The most recent environment of that name, live or not."""
    return session.exec(
        select(EnvironmentRecord)
        .where(EnvironmentRecord.name == name)
        .order_by(col(EnvironmentRecord.id).desc())
    ).first()


def name_is_live(session: Session, name: str) -> bool:
    return live_by_name(session, name) is not None


def transition(
    session: Session,
    env_id: int,
    *,
    expected: Sequence[EnvState],
    to: EnvState,
    now: datetime,
    **changes: Any,
) -> bool:
    values: dict[str, Any] = {"state": to.value, "updated_at": now, **changes}
    if to not in LIVE_ENV_STATES:
        values["live_name"] = None
    result = session.execute(
        update(EnvironmentRecord)
        .where(col(EnvironmentRecord.id) == env_id)
        .where(col(EnvironmentRecord.state).in_([s.value for s in expected]))
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_fields(session: Session, env_id: int, now: datetime, **changes: Any) -> None:
    session.execute(
        update(EnvironmentRecord)
        .where(col(EnvironmentRecord.id) == env_id)
        .values(updated_at=now, **changes)
    )


def live(
    session: Session, *, owner: str | None = None, teams: Sequence[str] | None = None
) -> Sequence[EnvironmentRecord]:
    query = select(EnvironmentRecord).where(
        col(EnvironmentRecord.state).in_([s.value for s in LIVE_ENV_STATES])
    )
    if owner is not None:
        query = query.where(EnvironmentRecord.owner_user_id == owner)
    if teams is not None:
        query = query.where(col(EnvironmentRecord.team).in_(list(teams)))
    return session.exec(query.order_by(col(EnvironmentRecord.name))).all()


def active_expiring_before(session: Session, cutoff: datetime) -> Sequence[EnvironmentRecord]:
    return session.exec(
        select(EnvironmentRecord)
        .where(EnvironmentRecord.state == EnvState.ACTIVE.value)
        .where(col(EnvironmentRecord.expires_at) <= cutoff)
        .order_by(col(EnvironmentRecord.expires_at))
    ).all()


def pending(session: Session, limit: int = 20) -> Sequence[EnvironmentRecord]:
    """Requests waiting for the platform team, oldest first."""
    query = (
        select(EnvironmentRecord)
        .where(col(EnvironmentRecord.state) == EnvState.PENDING)
        .order_by(col(EnvironmentRecord.requested_at))
        .limit(limit)
    )
    return session.exec(query).all()


def approved_before(session: Session, cutoff: datetime) -> Sequence[EnvironmentRecord]:
    """Approved environments whose provisioning should have started by `cutoff`."""
    return session.exec(
        select(EnvironmentRecord)
        .where(EnvironmentRecord.state == EnvState.APPROVED.value)
        .where(col(EnvironmentRecord.updated_at) <= cutoff)
    ).all()
