"""TTL extension requests on SQLite and PostgreSQL: asked twice is one row, the queue is oldest
first, a decision is taken once, and an approval that could not be applied waits again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from storage import extensions as repo
from storage.db import Database
from storage.extensions import APPROVED, ExtensionRequest

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _request(env_id: int, until: datetime, at: datetime, requester: str = "U1") -> ExtensionRequest:
    return ExtensionRequest(
        key=repo.request_key(env_id, until),
        environment_id=env_id,
        environment=f"pv-{env_id}",
        team="payments",
        requester=requester,
        requested_until=until,
        created_at=at,
    )


async def test_requests_are_stored_once_queued_oldest_first_and_decided_once(
    database: Database,
) -> None:
    until = T0 + timedelta(days=17)
    later, created = await database.run(
        lambda s: repo.insert_or_get(s, _request(2, until, T0 + timedelta(minutes=5), "U2"))
    )
    assert created
    first, _ = await database.run(lambda s: repo.insert_or_get(s, _request(1, until, T0)))
    again, created = await database.run(
        lambda s: repo.insert_or_get(s, _request(1, until, T0 + timedelta(hours=1)))
    )
    assert not created and again.id == first.id
    queue = await database.run(lambda s: repo.pending(s))
    assert [r.environment_id for r in queue] == [1, 2]
    assert [r.environment_id for r in await database.run(lambda s: repo.pending(s, "U2"))] == [2]

    decisions = await asyncio.gather(
        *[
            database.run(
                lambda s, by=by: repo.decide(s, first.id or 0, approve=True, by=by, now=T0)
            )
            for by in ("P1", "P2")
        ]
    )
    assert sorted(decisions) == [False, True], "two platform members: decided once"
    decided = await database.run(lambda s: repo.get(s, first.id or 0))
    assert decided is not None and decided.state == APPROVED

    await database.run(lambda s: repo.undecide(s, first.id or 0))
    assert [r.id for r in await database.run(lambda s: repo.pending(s))] == [first.id, later.id]
