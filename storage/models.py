"""Tables. Every time column is aware UTC (`UTCDateTime`); JSON columns hold plain dicts.

State machines live in the `state` columns and only change through guarded transitions in the
repositories (UPDATE ... WHERE state = <expected>), so two replicas, a Slack retry or a double
click can never make the same transition twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


def _time(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class AuditOutcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    INVALID = "invalid"
    ERROR = "error"


class AuditEntry(SQLModel, table=True):
    """Append-only: the repository has no update or delete, and PostgreSQL refuses both."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _time(index=True)
    actor_user_id: str = Field(index=True)
    actor_slack_team_id: str = ""
    actor_team: str = Field(default="", description="catalog team of the actor, when known")
    channel_id: str = ""
    command: str = Field(index=True)
    arguments: dict[str, Any] = _json()
    outcome: str
    error: str = ""
    request_id: str = ""
    operation_id: str | None = Field(default=None, index=True)


class OperationState(StrEnum):
    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Operation(SQLModel, table=True):
    """A state change, written before it runs and executed from this row."""

    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_state_kind", "state", "kind"),)

    id: str = Field(primary_key=True)
    kind: str
    idempotency_key: str = Field(unique=True)
    state: str = Field(default=OperationState.ACCEPTED)
    payload: dict[str, Any] = _json()
    result: dict[str, Any] = _json()
    error: str = ""
    actor_user_id: str = ""
    channel_id: str = ""
    message_ts: str = ""
    attempts: int = 0
    created_at: datetime = _time()
    updated_at: datetime = _time()
    finished_at: datetime | None = _time(nullable=True)


class IdempotencyKey(SQLModel, table=True):
    """Keys of requests already acted on (Slack event ids, trigger ids, button+target)."""

    __tablename__ = "idempotency_keys"

    key: str = Field(primary_key=True)
    created_at: datetime = _time(index=True)


class JobRun(SQLModel, table=True):
    """One row per scheduled job fire time: the guard that no fire runs twice."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_id", "fire_time"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str
    fire_time: datetime = _time()
    started_at: datetime = _time()
    finished_at: datetime | None = _time(nullable=True)
    outcome: str = ""
    replica: str = ""
