"""TTL extensions waiting for the platform team: one row per request beyond a template's max TTL.

The request is stored before anyone is told, under a unique key (the environment and the
asked-for expiry), so asking twice, a Slack retry or a second replica finds the same row. A
decision is one guarded transition out of `pending`, so two platform members deciding at once
decide it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from storage.types import UTCDateTime

PENDING, APPROVED, DENIED = "pending", "approved", "denied"


def _time(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


class ExtensionRequest(SQLModel, table=True):
    __tablename__ = "extension_requests"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    """`<environment id>:<requested expiry>`: the same request twice is one row."""
    environment_id: int = Field(index=True)
    environment: str
    team: str
    requester: str
    requested_until: datetime = _time()
    state: str = Field(default=PENDING, index=True)
    decided_by: str = ""
    decided_at: datetime | None = _time(nullable=True)
    created_at: datetime = _time()


def request_key(environment_id: int, until: datetime) -> str:
    return f"{environment_id}:{until.isoformat()}"


def insert_or_get(session: Session, row: ExtensionRequest) -> tuple[ExtensionRequest, bool]:
    """Store the request; if the same one is stored already, return it (`created` False)."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        existing = session.exec(
            select(ExtensionRequest).where(ExtensionRequest.key == row.key)
        ).one()
        session.expunge(existing)
        return existing, False
    session.refresh(row)
    session.expunge(row)
    return row, True


def get(session: Session, request_id: int) -> ExtensionRequest | None:
    found = session.get(ExtensionRequest, request_id)
    if found is not None:
        session.expunge(found)
    return found


def pending(session: Session, requester: str | None = None) -> Sequence[ExtensionRequest]:
    """Waiting requests, oldest first (of one requester, if given)."""
    query = select(ExtensionRequest).where(ExtensionRequest.state == PENDING)
    if requester is not None:
        query = query.where(ExtensionRequest.requester == requester)
    rows = session.exec(
        query.order_by(col(ExtensionRequest.created_at), col(ExtensionRequest.id))
    ).all()
    for row in rows:
        session.expunge(row)
    return rows


def decide(session: Session, request_id: int, *, approve: bool, by: str, now: datetime) -> bool:
    """Move a pending request to approved or denied; False if it was decided already."""
    result = session.execute(
        update(ExtensionRequest)
        .where(col(ExtensionRequest.id) == request_id, col(ExtensionRequest.state) == PENDING)
        .values(state=APPROVED if approve else DENIED, decided_by=by, decided_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def undecide(session: Session, request_id: int) -> None:
    """Back to pending: the approved extension could not be applied (nothing half-done)."""
    session.execute(
        update(ExtensionRequest)
        .where(col(ExtensionRequest.id) == request_id)
        .values(state=PENDING, decided_by="", decided_at=None)
    )
