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
    __table_args__ = (
        Index("ix_operations_state_kind", "state", "kind"),
        Index("ix_operations_state_lease", "state", "lease_expires_at"),
    )

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
    owner: str | None = Field(default=None, description="process that holds the lease")
    lease_expires_at: datetime | None = _time(nullable=True)
    """The owner renews it while it runs the operation; past it, any replica may take over."""
    deadline_at: datetime | None = _time(nullable=True)
    """The operation is terminal by then: succeeded, failed, or failed for running out of time."""


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


class EnvState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    DENIED = "denied"
    CANCELLED = "cancelled"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"


LIVE_ENV_STATES = (
    EnvState.PENDING,
    EnvState.APPROVED,
    EnvState.PROVISIONING,
    EnvState.ACTIVE,
    EnvState.DELETING,
)


class EnvironmentRecord(SQLModel, table=True):
    """A requested environment: one Kubernetes namespace from a golden-path template.

    `live_name` equals `name` while the environment exists or is on its way, and is NULL once
    it is gone, so a name is unique among live environments yet can be used again later.
    """

    __tablename__ = "environments"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    live_name: str | None = Field(default=None, unique=True)
    template: str
    size: str
    team: str = Field(index=True)
    owner_user_id: str = Field(index=True)
    purpose: str = ""
    cluster: str
    state: str = Field(default=EnvState.PENDING, index=True)
    ttl_seconds: int
    expires_at: datetime | None = _time(nullable=True, index=True)
    monthly_cost: str = ""
    currency: str = "USD"
    requested_at: datetime = _time()
    decided_at: datetime | None = _time(nullable=True)
    decided_by: str = ""
    decision_reason: str = ""
    card_channel: str = ""
    card_ts: str = ""
    progress_channel: str = ""
    progress_ts: str = ""
    reminders_sent: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    failure: str = ""
    updated_at: datetime = _time()


class DeployKind(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    PREVIEW = "preview"
    """A pull request's preview: kept in the record, left out of the DORA figures."""


class DeployOutcome(StrEnum):
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DeploymentRecord(SQLModel, table=True):
    """Every deploy and rollback, from Slack or recorded by CI/CD: the source of DORA metrics.

    `in_flight_key` is `service/environment` while a rollout is in progress and NULL after, so
    the database itself allows one rollout per service and environment at a time.
    """

    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_service_env_started", "service", "environment", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(index=True)
    team: str = Field(index=True)
    environment: str
    kind: str = Field(default=DeployKind.DEPLOY)
    version: str
    previous_version: str = ""
    actor: str = ""
    source: str = Field(default="slack", description="slack or api")
    started_at: datetime = _time(index=True)
    finished_at: datetime | None = _time(nullable=True)
    outcome: str = Field(default=DeployOutcome.IN_PROGRESS)
    failure_reason: str = ""
    commit_sha: str = ""
    commit_time: datetime | None = _time(nullable=True)
    revision: int | None = None
    message_channel: str = ""
    message_ts: str = ""
    hotfix: bool = False
    in_flight_key: str | None = Field(default=None, unique=True)
    desired_state_commit: str | None = None
    """GitOps delivery: the commit (or merged pull request's commit) that made the change."""


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class DeployApproval(SQLModel, table=True):
    """A deploy waiting for a second person: the two-person rule, or break glass in a freeze.

    `state` only moves `pending -> approved|denied` through a guarded UPDATE, so of two
    approvers pressing at once exactly one decides, and the deploy starts once.
    """

    __tablename__ = "deploy_approvals"

    id: int | None = Field(default=None, primary_key=True)
    service: str = Field(index=True)
    environment: str
    version: str
    hotfix: bool = False
    requester: str
    reason: str = Field(default="", description="why: break-glass or budget-override reason")
    needs: str = Field(default="", description="comma list: two_person, break_glass")
    override_budget: bool = False
    state: str = Field(default=ApprovalState.PENDING, index=True)
    decided_by: str = ""
    decision_note: str = ""
    origin_channel: str = ""
    card_channel: str = ""
    card_ts: str = ""
    created_at: datetime = _time()
    decided_at: datetime | None = _time(nullable=True)


class Freeze(SQLModel, table=True):
    """A deploy freeze set in Slack; catalog freeze windows are evaluated alongside."""

    __tablename__ = "freezes"

    id: int | None = Field(default=None, primary_key=True)
    environment: str = Field(index=True)
    service: str = Field(default="", sa_column_kwargs={"server_default": ""})
    """The one service frozen in the environment; "" freezes every service in it."""
    reason: str
    created_by: str
    created_at: datetime = _time()
    ends_at: datetime | None = _time(nullable=True)
    lifted_at: datetime | None = _time(nullable=True)
    lifted_by: str = ""
