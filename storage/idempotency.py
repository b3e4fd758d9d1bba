"""Idempotency keys live in the database, so retries and double clicks act once across
restarts and replicas. `claim` is the only way to take a key: True the first time, False after;
`held` only asks (a re-run checking whether an earlier run already did something)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from storage.models import IdempotencyKey


def claim(session: Session, key: str, now: datetime) -> bool:
    try:
        with session.begin_nested():
            session.add(IdempotencyKey(key=key, created_at=now))
            session.flush()
    except IntegrityError:
        return False
    return True


def held(session: Session, key: str) -> bool:
    return session.get(IdempotencyKey, key) is not None


def forget_older_than(session: Session, cutoff: datetime) -> int:
    result = session.execute(delete(IdempotencyKey).where(col(IdempotencyKey.created_at) < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
