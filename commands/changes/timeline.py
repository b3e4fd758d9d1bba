"""Turns the change records of a window into one timeline, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from core.durations import format_duration
from storage.changes import ChangeRecords
from storage.models import DeployKind, DeployOutcome, EnvState


class ChangeKind(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    SLEEP = "sleep"
    WAKE = "wake"
    ENVIRONMENT = "environment"
    SLO_ALERT = "slo_alert"
    SLO_RESOLVED = "slo_resolved"


@dataclass(frozen=True)
class ChangeEvent:
    at: datetime
    kind: ChangeKind
    subject: str
    """The service, or the environment the change happened to."""
    environment: str
    actor: str
    """A Slack user id, or "" when forgebot or a schedule did it."""
    text: str
    """Plain words (no mrkdwn) describing the change."""
    deployment_id: int | None = None
    """Set on a succeeded deploy that can be rolled back."""


_OUTCOME = {
    DeployOutcome.SUCCEEDED.value: "succeeded",
    DeployOutcome.FAILED.value: "failed",
    DeployOutcome.IN_PROGRESS.value: "in progress",
}

_ENV_WORDS = {
    EnvState.PENDING.value: "requested",
    EnvState.APPROVED.value: "approved",
    EnvState.PROVISIONING.value: "provisioning",
    EnvState.ACTIVE.value: "created",
    EnvState.DENIED.value: "denied",
    EnvState.CANCELLED.value: "cancelled",
    EnvState.FAILED.value: "failed to provision",
    EnvState.DELETING.value: "being deleted",
    EnvState.DELETED.value: "deleted",
}


def build(records: ChangeRecords, since: datetime, until: datetime) -> list[ChangeEvent]:
    """Every event inside [since, until), newest first."""
    events: list[ChangeEvent] = []
    for d in records.deployments:
        kind = ChangeKind.ROLLBACK if d.kind == DeployKind.ROLLBACK.value else ChangeKind.DEPLOY
        verb = "rolled back" if kind is ChangeKind.ROLLBACK else "deployed"
        source = " (CI/CD)" if d.source == "api" else ""
        outcome = _OUTCOME.get(d.outcome, d.outcome)
        reason = f": {d.failure_reason}" if d.failure_reason else ""
        start = d.previous_version or "?"
        events.append(
            ChangeEvent(
                at=d.started_at,
                kind=kind,
                subject=d.service,
                environment=d.environment,
                actor=d.actor,
                text=f"{d.service} {verb} in {d.environment}{source}: {start} → {d.version}, "
                f"{outcome}{reason}",
                deployment_id=(
                    d.id
                    if kind is ChangeKind.DEPLOY
                    and d.outcome != DeployOutcome.IN_PROGRESS.value
                    and d.previous_version
                    else None
                ),
            )
        )
    for f in records.freezes:
        until_text = f" until {f.ends_at:%Y-%m-%d %H:%M} UTC" if f.ends_at else ""
        events.append(
            ChangeEvent(
                f.created_at,
                ChangeKind.FREEZE,
                f.environment,
                f.environment,
                f.created_by,
                f"{f.environment} frozen{until_text}: {f.reason}",
            )
        )
        if f.lifted_at is not None:
            events.append(
                ChangeEvent(
                    f.lifted_at,
                    ChangeKind.UNFREEZE,
                    f.environment,
                    f.environment,
                    f.lifted_by,
                    f"{f.environment} unfrozen",
                )
            )
    for s in records.sleeps:
        events.append(
            ChangeEvent(
                s.started_at,
                ChangeKind.SLEEP,
                s.environment,
                s.environment,
                "",
                f"{s.environment} went to sleep (off-hours)",
            )
        )
        if s.ended_at is not None:
            slept = format_duration(s.ended_at - s.started_at)
            events.append(
                ChangeEvent(
                    s.ended_at,
                    ChangeKind.WAKE,
                    s.environment,
                    s.environment,
                    "",
                    f"{s.environment} woke up after {slept}",
                )
            )
    for e in records.environments:
        events.append(
            ChangeEvent(
                e.requested_at,
                ChangeKind.ENVIRONMENT,
                e.name,
                e.name,
                e.owner_user_id,
                f"environment {e.name} ({e.template} {e.size}) requested",
            )
        )
        if e.state != EnvState.PENDING.value and e.updated_at > e.requested_at:
            events.append(
                ChangeEvent(
                    e.updated_at,
                    ChangeKind.ENVIRONMENT,
                    e.name,
                    e.name,
                    e.decided_by if e.state in ("approved", "denied") else "",
                    f"environment {e.name} {_ENV_WORDS.get(e.state, e.state)}",
                )
            )
    for a in records.slo_episodes:
        events.append(
            ChangeEvent(
                a.started_at,
                ChangeKind.SLO_ALERT,
                a.service,
                a.environment,
                "",
                f"SLO {a.slo_key} burning ({a.severity}): {a.condition}",
            )
        )
        if a.resolved_at is not None:
            events.append(
                ChangeEvent(
                    a.resolved_at,
                    ChangeKind.SLO_RESOLVED,
                    a.service,
                    a.environment,
                    "",
                    f"SLO {a.slo_key} burn resolved after "
                    f"{format_duration(a.resolved_at - a.started_at)}",
                )
            )
    inside = [e for e in events if since <= e.at < until]
    inside.sort(key=lambda e: e.at, reverse=True)
    return inside
