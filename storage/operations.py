"""Operations repository: rows are created `accepted` and move only by guarded transitions.

Every row that is not terminal carries an owner (one forgebot process) and a lease. `claim`
is the only way to start running a row: one guarded UPDATE that succeeds for exactly one
process, and only when the row is free (accepted and never claimed, its lease expired, or
its owner is the caller, who knows it runs nothing for it). Terminal transitions are guarded
by the owner too, so a process that lost its lease cannot write an outcome over the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, update
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


def _free(now: datetime, owner: str) -> Any:
    return or_(
        col(Operation.lease_expires_at).is_(None),
        col(Operation.lease_expires_at) < now,
        col(Operation.owner) == owner,
    )


def claim(
    session: Session, operation_id: str, *, owner: str, now: datetime, lease_until: datetime
) -> bool:
    """Take the row to `running` for `owner` if it is free (see the module docstring)."""
    result = session.execute(
        update(Operation)
        .where(col(Operation.id) == operation_id)
        .where(
            col(Operation.state).in_([OperationState.ACCEPTED.value, OperationState.RUNNING.value])
        )
        .where(_free(now, owner))
        .values(
            state=OperationState.RUNNING.value,
            owner=owner,
            lease_expires_at=lease_until,
            updated_at=now,
            attempts=Operation.attempts + 1,  # type: ignore[operator]
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew(
    session: Session, operation_ids: Sequence[str], *, owner: str, lease_until: datetime
) -> set[str]:
    """Extend the leases `owner` still holds; returns the ids it still holds."""
    if not operation_ids:
        return set()
    session.execute(
        update(Operation)
        .where(col(Operation.id).in_(list(operation_ids)))
        .where(col(Operation.owner) == owner)
        .where(col(Operation.state) == OperationState.RUNNING.value)
        .values(lease_expires_at=lease_until)
    )
    held = session.exec(
        select(Operation.id)
        .where(col(Operation.id).in_(list(operation_ids)))
        .where(col(Operation.owner) == owner)
        .where(col(Operation.state) == OperationState.RUNNING.value)
    ).all()
    return set(held)


def release(session: Session, operation_ids: Sequence[str], *, owner: str, now: datetime) -> None:
    """End `owner`'s leases now (a graceful shutdown), so another process takes over at once."""
    session.execute(
        update(Operation)
        .where(col(Operation.id).in_(list(operation_ids)))
        .where(col(Operation.owner) == owner)
        .where(col(Operation.state) == OperationState.RUNNING.value)
        .values(lease_expires_at=now)
    )


def finish(
    session: Session,
    operation_id: str,
    *,
    owner: str,
    to: OperationState,
    now: datetime,
    **changes: Any,
) -> bool:
    """The owner's terminal write: refused once another process has taken the row over."""
    result = session.execute(
        update(Operation)
        .where(col(Operation.id) == operation_id)
        .where(col(Operation.state) == OperationState.RUNNING.value)
        .where(col(Operation.owner) == owner)
        .values(state=to.value, updated_at=now, finished_at=now, lease_expires_at=None, **changes)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claimable(
    session: Session, *, owner: str, now: datetime, exclude: Sequence[str] = ()
) -> Sequence[Operation]:
    """Unfinished rows this process may take over (their lease expired, or they are its own
    and it runs nothing for them), oldest first; `exclude` are the rows it runs now."""
    states = [OperationState.ACCEPTED.value, OperationState.RUNNING.value]
    query = (
        select(Operation)
        .where(col(Operation.state).in_(states))
        .where(
            or_(
                col(Operation.lease_expires_at).is_(None),
                col(Operation.lease_expires_at) < now,
                and_(col(Operation.owner) == owner, col(Operation.owner).is_not(None)),
            )
        )
        .order_by(col(Operation.created_at))
    )
    if exclude:
        query = query.where(col(Operation.id).not_in(list(exclude)))
    return session.exec(query).all()


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


def referencing(
    session: Session, kinds: Sequence[str], field: str, value: object, since: datetime
) -> bool:
    """Whether an operation of `kinds` created since `since` carries `field == value` in its
    payload (a record some operation runs, or will)."""
    rows = session.exec(
        select(Operation)
        .where(col(Operation.kind).in_(kinds))
        .where(col(Operation.created_at) >= since)
    ).all()
    return any(row.payload.get(field) == value for row in rows)
