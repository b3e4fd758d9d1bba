"""Group commit on SQLite and PostgreSQL: items arriving together share one transaction, a
failing item fails alone, and the batched idempotency claim acts once per key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlmodel import Session, select

from storage import idempotency
from storage.db import Database
from storage.group_commit import GroupCommit
from storage.models import IdempotencyKey

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_claim_many_claims_each_key_once(database: Database) -> None:
    assert database.run_sync(lambda s: idempotency.claim(s, "k1", NOW)) is True
    claimed = database.run_sync(
        lambda s: idempotency.claim_many(s, [("k1", NOW), ("k2", NOW), ("k2", NOW), ("k3", NOW)])
    )
    assert claimed == {"k2", "k3"}
    assert database.run_sync(lambda s: idempotency.claim_many(s, [("k3", NOW)])) == set()
    assert database.run_sync(lambda s: idempotency.claim(s, "k2", NOW)) is False


async def test_items_arriving_together_share_a_transaction_and_fail_alone(
    database: Database,
) -> None:
    def claim_all(session: Session, keys: list[str]) -> list[bool]:
        if "boom" in keys:
            raise ValueError("boom")
        claimed = idempotency.claim_many(session, [(k, NOW) for k in keys])
        return [k in claimed for k in keys]

    writer: GroupCommit[str, bool] = GroupCommit(database, claim_all)
    try:
        first = await asyncio.gather(*(writer.run(f"key-{i}") for i in range(30)))
        assert first == [True] * 30
        assert writer.transactions <= 2, "30 items, at most one transaction and the next"
        results = await asyncio.gather(
            writer.run("key-0"), writer.run("boom"), writer.run("key-30"), return_exceptions=True
        )
        assert results[0] is False and results[2] is True, "the others committed"
        assert isinstance(results[1], ValueError)
    finally:
        writer.close()
    keys = database.run_sync(lambda s: set(s.exec(select(IdempotencyKey.key)).all()))
    assert keys == {f"key-{i}" for i in range(31)}
