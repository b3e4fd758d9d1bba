"""Operations repository: rows are created `accepted` and move only by guarded transitions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import Operation, OperationState


def insert_or_get(session: Session, operation: Operation) -> tuple[Operation, bool]:
    """Insert `operation`; if its idempotency key exists, return the existing row instead."""
    try:
        with session.begin_nested():
            session.add(operation)
            session.flush()
    except IntegrityError:
        existing = session.exec(
            select(Operation).where(Operation.idempotency_key == operation.idempotency_key)
        ).one()
        return existing, False
    return operation, True


def get(session: Session, operation_id: str) -> Operation | None:
    return session.get(Operation, operation_id)


def by_key(session: Session, key: str) -> Operation | None:
    return session.exec(select(Operation).where(Operation.idempotency_key == key)).first()


def transition(
    session: Session,
    operation_id: str,
    *,
    expected: Sequence[OperationState],
    to: OperationState,
    now: datetime,
    **changes: Any,
) -> bool:
    """Move the row to `to` only if it is in one of `expected`. True if this call moved it."""
    values: dict[str, Any] = {"state": to.value, "updated_at": now, **changes}
    if to in (OperationState.SUCCEEDED, OperationState.FAILED):
        values["finished_at"] = now
    if to is OperationState.RUNNING:
        values["attempts"] = Operation.attempts + 1  # type: ignore[operator]
    result = session.execute(
        update(Operation)
        .where(col(Operation.id) == operation_id)
        .where(col(Operation.state).in_([s.value for s in expected]))
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_fields(session: Session, operation_id: str, now: datetime, **changes: Any) -> None:
    session.execute(
        update(Operation).where(col(Operation.id) == operation_id).values(updated_at=now, **changes)
    )


def unfinished(session: Session) -> Sequence[Operation]:
    states = [OperationState.ACCEPTED.value, OperationState.RUNNING.value]
    return session.exec(
        select(Operation)
        .where(col(Operation.state).in_(states))
        .order_by(col(Operation.created_at))
    ).all()


def failed_since(session: Session, since: datetime, limit: int = 10) -> Sequence[Operation]:
    """Operations that failed after `since`, newest first."""
    query = (
        select(Operation)
        .where(col(Operation.state) == OperationState.FAILED, col(Operation.updated_at) >= since)
        .order_by(col(Operation.updated_at).desc())
        .limit(limit)
    )
    return session.exec(query).all()
