"""Idempotency keys live in the database, so retries and double clicks act once across
restarts and replicas. `claim` is the only way to take a key: True the first time, False after;
`held` only asks (a re-run checking whether an earlier run already did something)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from storage.models import IdempotencyKey


def claim(session: Session, key: str, now: datetime) -> bool:
    """One statement, no savepoint (`INSERT ... ON CONFLICT DO NOTHING`, which SQLite and
    PostgreSQL both speak): a webhook flood claims hundreds of keys a second."""
    table: Table = IdempotencyKey.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite_insert(table).on_conflict_do_nothing()
    else:
        try:
            with session.begin_nested():
                session.add(IdempotencyKey(key=key, created_at=now))
                session.flush()
        except IntegrityError:
            return False
        return True
    inserted = session.execute(
        statement.values(key=key, created_at=now).returning(table.c.key)
    ).first()
    return inserted is not None


def claim_many(session: Session, keys: Sequence[tuple[str, datetime]]) -> set[str]:
    """`claim` for many keys in one statement; the keys claimed now (not before)."""
    if not keys:
        return set()
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        return {key for key, at in keys if claim(session, key, at)}
    table: Table = IdempotencyKey.__table__  # type: ignore[attr-defined]
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    unique = list({key: at for key, at in keys}.items())
    statement: Any = insert(table).values([{"key": k, "created_at": at} for k, at in unique])
    rows = session.execute(statement.on_conflict_do_nothing().returning(table.c.key)).all()
    return {str(row[0]) for row in rows}


def held(session: Session, key: str) -> bool:
    return session.get(IdempotencyKey, key) is not None


def forget_older_than(session: Session, cutoff: datetime) -> int:
    result = session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.created_at) < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
