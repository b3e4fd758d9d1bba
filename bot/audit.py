"""Every command and every button or modal action lands here, whatever its outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.clock import Clock
from bot.logs import redact, request_id
from storage import audit as audit_repo
from storage.db import Database, DatabaseUnavailable
from storage.models import AuditEntry, AuditOutcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditRecord:
    actor_user_id: str
    command: str
    outcome: AuditOutcome
    arguments: dict[str, Any]
    actor_slack_team_id: str = ""
    actor_team: str = ""
    channel_id: str = ""
    error: str = ""
    operation_id: str | None = None


class AuditLog:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def record(self, record: AuditRecord) -> None:
        entry = AuditEntry(
            at=self._clock.now(),
            actor_user_id=record.actor_user_id,
            actor_slack_team_id=record.actor_slack_team_id,
            actor_team=record.actor_team,
            channel_id=record.channel_id,
            command=record.command,
            arguments={
                k: redact(str(v)) if isinstance(v, str) else v for k, v in record.arguments.items()
            },
            outcome=record.outcome.value,
            error=redact(record.error)[:2000],
            request_id=request_id.get(),
            operation_id=record.operation_id,
        )
        try:
            await self._db.run(lambda s: audit_repo.append(s, entry))
        except DatabaseUnavailable:
            # The action's own outcome was already decided; losing the database must not turn
            # it into an error for the user. The log line keeps the trail.
            log.error(
                "audit entry not stored (database unavailable): %s %s %s",
                record.actor_user_id,
                record.command,
                record.outcome.value,
            )
