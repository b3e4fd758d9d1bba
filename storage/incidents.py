"""Incidents and their timelines.

An incident is opened once per request: `request_key` (the slash command's trigger, the
modal's view id, the alert button's group) is unique, so a retried open, a double submit or a
second replica finds the existing row. State only moves `open -> resolved` through a guarded UPDATE. Timeline
events may carry a `dedupe_key` (a pinned message's ts, a reaction, an audit entry id): a
unique column, so Slack's event retries never add the same line twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from storage.models import AuditEntry, AuditOutcome
from storage.types import UTCDateTime


def _time(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


class IncidentState:
    OPEN = "open"
    RESOLVED = "resolved"


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"

    id: int | None = Field(default=None, primary_key=True)
    channel_name: str = Field(index=True, description="inc-YYYYMMDD-<slug>")
    request_key: str = Field(unique=True)
    title: str
    severity: str
    service: str = Field(default="", index=True)
    team: str = Field(default="", index=True)
    summary: str = ""
    state: str = Field(default=IncidentState.OPEN, index=True)
    channel_id: str = Field(default="", index=True)
    card_ts: str = ""
    announce_channel: str = ""
    announce_ts: str = ""
    commander: str = ""
    communications: str = ""
    opened_by: str
    opened_at: datetime = _time(index=True)
    impact_started_at: datetime = _time()
    resolved_at: datetime | None = _time(nullable=True)
    resolved_by: str = ""
    resolution: str = ""
    paging: str = Field(default="", description="what paging did: provider and outcome")
    postmortem_file: str = ""


class IncidentEvent(SQLModel, table=True):
    __tablename__ = "incident_events"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(index=True, foreign_key="incidents.id")
    at: datetime = _time()
    kind: str
    actor: str = ""
    text: str = ""
    dedupe_key: str | None = Field(default=None, unique=True)


def open_incident(session: Session, incident: Incident) -> tuple[Incident, bool]:
    """Insert an open incident, or return the one opened by the same request."""
    try:
        with session.begin_nested():
            session.add(incident)
            session.flush()
    except IntegrityError:
        existing = session.exec(
            select(Incident).where(Incident.request_key == incident.request_key)
        ).first()
        assert existing is not None
        session.expunge(existing)
        return existing, False
    session.refresh(incident)
    session.expunge(incident)
    return incident, True


def get(session: Session, incident_id: int) -> Incident | None:
    found = session.get(Incident, incident_id)
    if found is not None:
        session.expunge(found)
    return found


def by_channel(session: Session, channel_id: str) -> Incident | None:
    found = session.exec(
        select(Incident)
        .where(Incident.channel_id == channel_id)
        .order_by(col(Incident.opened_at).desc())
    ).first()
    if found is not None:
        session.expunge(found)
    return found


def open_incidents(session: Session) -> Sequence[Incident]:
    rows = session.exec(
        select(Incident)
        .where(Incident.state == IncidentState.OPEN)
        .order_by(col(Incident.opened_at).desc())
    ).all()
    for row in rows:
        session.expunge(row)
    return rows


def set_fields(session: Session, incident_id: int, **changes: Any) -> None:
    session.execute(update(Incident).where(col(Incident.id) == incident_id).values(**changes))


def set_if_open(session: Session, incident_id: int, **changes: Any) -> bool:
    result = session.execute(
        update(Incident)
        .where(col(Incident.id) == incident_id, col(Incident.state) == IncidentState.OPEN)
        .values(**changes)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def resolve(session: Session, incident_id: int, now: datetime, by: str, resolution: str) -> bool:
    """open -> resolved, once."""
    return set_if_open(
        session,
        incident_id,
        state=IncidentState.RESOLVED,
        resolved_at=now,
        resolved_by=by,
        resolution=resolution,
    )


def add_event(session: Session, event: IncidentEvent) -> bool:
    """Append a timeline event; False if one with the same `dedupe_key` exists."""
    try:
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError:
        return False
    return True


def events(session: Session, incident_id: int) -> Sequence[IncidentEvent]:
    rows = session.exec(
        select(IncidentEvent)
        .where(IncidentEvent.incident_id == incident_id)
        .order_by(col(IncidentEvent.at), col(IncidentEvent.id))
    ).all()
    for row in rows:
        session.expunge(row)
    return rows


def audit_in_channel(session: Session, channel_id: str, since: datetime) -> Sequence[AuditEntry]:
    """Everything forgebot did on request from this channel since the incident opened."""
    rows = session.exec(
        select(AuditEntry)
        .where(AuditEntry.channel_id == channel_id, col(AuditEntry.at) >= since)
        .where(AuditEntry.outcome == AuditOutcome.OK.value)
        .order_by(col(AuditEntry.id))
        .limit(1000)
    ).all()
    for row in rows:
        session.expunge(row)
    return rows


def resolved_between(
    session: Session, services: Sequence[str], since: datetime, until: datetime
) -> Sequence[Incident]:
    """Incidents of these services opened in the window and resolved (DORA time to restore)."""
    rows = session.exec(
        select(Incident)
        .where(col(Incident.service).in_(list(services)))
        .where(Incident.state == IncidentState.RESOLVED)
        .where(col(Incident.opened_at) >= since, col(Incident.opened_at) < until)
    ).all()
    for row in rows:
        session.expunge(row)
    return rows
