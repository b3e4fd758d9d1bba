"""The audit log repository: insert and read, nothing else (the table refuses updates)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from storage.models import AuditEntry


def append(session: Session, entry: AuditEntry) -> AuditEntry:
    session.add(entry)
    session.flush()
    return entry


def append_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """One multi-row INSERT of plain rows: written for every request, so this is hot."""
    if rows:
        session.execute(insert(AuditEntry), rows)


def recent(
    session: Session,
    *,
    limit: int = 50,
    actor_user_id: str | None = None,
    command_prefix: str | None = None,
    since: datetime | None = None,
) -> Sequence[AuditEntry]:
    query = select(AuditEntry)
    if actor_user_id is not None:
        query = query.where(AuditEntry.actor_user_id == actor_user_id)
    if command_prefix is not None:
        query = query.where(col(AuditEntry.command).startswith(command_prefix))
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return session.exec(query.order_by(col(AuditEntry.id).desc()).limit(limit)).all()
