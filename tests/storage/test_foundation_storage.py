"""Storage behaviour every capability relies on, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from storage import audit, idempotency, job_runs, migrate
from storage import operations as ops
from storage.db import Database
from storage.models import AuditEntry, Operation, OperationState

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _op(key: str) -> Operation:
    return Operation(
        id=key + "-id", kind="test.kind", idempotency_key=key, created_at=NOW, updated_at=NOW
    )


def test_migrations_are_at_head(database: Database) -> None:
    assert migrate.current_revision(database.engine) == migrate.head_revision()
    migrate.require_current(database.engine)


def test_times_come_back_aware_utc(database: Database) -> None:
    entry = AuditEntry(at=NOW, actor_user_id="U1", command="help", outcome="ok", arguments={"a": 1})
    database.run_sync(lambda s: audit.append(s, entry))
    [stored] = database.run_sync(lambda s: audit.recent(s))
    assert stored.at == NOW and stored.at.tzinfo is not None
    assert stored.arguments == {"a": 1}


def test_naive_datetimes_are_refused(database: Database) -> None:
    entry = AuditEntry(at=NOW.replace(tzinfo=None), actor_user_id="U1", command="x", outcome="ok")
    with pytest.raises(Exception, match="naive"):
        database.run_sync(lambda s: audit.append(s, entry))


def test_audit_log_is_append_only(database: Database) -> None:
    entry = AuditEntry(at=NOW, actor_user_id="U1", command="deploy", outcome="ok")
    database.run_sync(lambda s: audit.append(s, entry))
    with pytest.raises(DBAPIError, match="append-only"):
        database.run_sync(lambda s: s.execute(text("UPDATE audit_log SET outcome = 'denied'")))
    with pytest.raises(DBAPIError, match="append-only"):
        database.run_sync(lambda s: s.execute(text("DELETE FROM audit_log")))
    [kept] = database.run_sync(lambda s: audit.recent(s))
    assert kept.outcome == "ok"


def test_idempotency_key_claims_once(database: Database) -> None:
    assert database.run_sync(lambda s: idempotency.claim(s, "event:Ev1", NOW)) is True
    assert database.run_sync(lambda s: idempotency.claim(s, "event:Ev1", NOW)) is False
    assert database.run_sync(lambda s: idempotency.claim(s, "event:Ev2", NOW)) is True
    removed = database.run_sync(
        lambda s: idempotency.forget_older_than(s, NOW + timedelta(seconds=1))
    )
    assert removed == 2


def test_operation_insert_is_idempotent(database: Database) -> None:
    first, created = database.run_sync(lambda s: ops.insert_or_get(s, _op("k1")))
    again, created_again = database.run_sync(lambda s: ops.insert_or_get(s, _op("k1")))
    assert created and not created_again
    assert again.id == first.id
    count = database.run_sync(lambda s: len(s.exec(select(Operation)).all()))
    assert count == 1


def test_guarded_transitions_move_once(database: Database) -> None:
    database.run_sync(lambda s: ops.insert_or_get(s, _op("k2")))
    move = lambda: database.run_sync(  # noqa: E731
        lambda s: ops.transition(
            s, "k2-id", expected=[OperationState.ACCEPTED], to=OperationState.RUNNING, now=NOW
        )
    )
    assert move() is True
    assert move() is False
    done = database.run_sync(
        lambda s: ops.transition(
            s,
            "k2-id",
            expected=[OperationState.RUNNING],
            to=OperationState.SUCCEEDED,
            now=NOW,
            result={"ok": True},
        )
    )
    assert done
    row = database.run_sync(lambda s: ops.get(s, "k2-id"))
    assert row is not None and row.state == "succeeded" and row.attempts == 1
    assert row.finished_at == NOW and row.result == {"ok": True}
    assert database.run_sync(ops.unfinished) == []


def test_job_slot_is_claimed_once(database: Database) -> None:
    first = database.run_sync(lambda s: job_runs.claim(s, "ttl", NOW, NOW, "replica-a"))
    second = database.run_sync(lambda s: job_runs.claim(s, "ttl", NOW, NOW, "replica-b"))
    other_slot = database.run_sync(
        lambda s: job_runs.claim(s, "ttl", NOW + timedelta(minutes=5), NOW, "b")
    )
    assert first is not None and second is None and other_slot is not None
