"""Alertmanager alert groups: one Slack message per group, updated in place.

A group is keyed by Alertmanager's `groupKey` (with the receiver). The row is inserted under
that unique key before anything is posted, so of two deliveries of the same group (Alertmanager
resends, two replicas) exactly one posts the message; the others update it. `version` makes
every change a compare-and-swap, so concurrent deliveries never overwrite each other's alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from storage.types import UTCDateTime


def _time(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


POSTING = "posting"


class AlertGroup(SQLModel, table=True):
    __tablename__ = "alert_groups"

    id: int | None = Field(default=None, primary_key=True)
    group_key: str = Field(unique=True)
    receiver: str = ""
    source: str = Field(default="alertmanager", description="alertmanager or slo")
    status: str = "firing"
    service: str = ""
    team: str = ""
    environment: str = ""
    channel: str = ""
    message_ts: str = ""
    common_labels: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    alerts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """fingerprint -> {status, starts_at, ends_at, labels, summary, runbook}"""
    external_url: str = ""
    acked_by: str = ""
    acked_at: datetime | None = _time(nullable=True)
    silences: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    version: int = 0
    created_at: datetime = _time(index=True)
    updated_at: datetime = _time()


def insert(session: Session, group: AlertGroup) -> tuple[AlertGroup, bool]:
    """Insert a new group, or return the existing one with the same key."""
    try:
        with session.begin_nested():
            session.add(group)
            session.flush()
    except IntegrityError:
        found = session.exec(select(AlertGroup).where(AlertGroup.group_key == group.group_key))
        existing = found.one()
        session.expunge(existing)
        return existing, False
    session.refresh(group)
    session.expunge(group)
    return group, True


def by_key(session: Session, group_key: str) -> AlertGroup | None:
    found = session.exec(select(AlertGroup).where(AlertGroup.group_key == group_key)).first()
    if found is not None:
        session.expunge(found)
    return found


def get(session: Session, group_id: int) -> AlertGroup | None:
    found = session.get(AlertGroup, group_id)
    if found is not None:
        session.expunge(found)
    return found


def swap(session: Session, group_id: int, version: int, now: datetime, **changes: Any) -> bool:
    """Apply `changes` only if nobody changed the row since `version` was read."""
    result = session.execute(
        update(AlertGroup)
        .where(col(AlertGroup.id) == group_id, col(AlertGroup.version) == version)
        .values(version=version + 1, updated_at=now, **changes)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claim_post(session: Session, group_id: int) -> bool:
    """The one delivery that posts the group's first message."""
    result = session.execute(
        update(AlertGroup)
        .where(col(AlertGroup.id) == group_id, col(AlertGroup.message_ts) == "")
        .values(message_ts=POSTING)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_message(session: Session, group_id: int, channel: str, ts: str) -> None:
    session.execute(
        update(AlertGroup)
        .where(col(AlertGroup.id) == group_id)
        .values(channel=channel, message_ts=ts)
    )


def recent(session: Session, since: datetime) -> Sequence[AlertGroup]:
    rows = session.exec(
        select(AlertGroup)
        .where(col(AlertGroup.created_at) >= since)
        .order_by(col(AlertGroup.created_at).desc())
    ).all()
    for row in rows:
        session.expunge(row)
    return rows
