"""Incidents, their timelines and alert groups on SQLite and PostgreSQL: every guard that keeps
a retry, a double click or a second replica from acting twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from storage import alert_groups
from storage import incidents as repo
from storage.alert_groups import POSTING, AlertGroup
from storage.db import Database
from storage.incidents import Incident, IncidentEvent

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _incident(key: str, service: str = "checkout") -> Incident:
    return Incident(
        channel_name="inc-20261124-checkout-down",
        request_key=key,
        title="checkout down",
        severity="SEV2",
        service=service,
        team="payments",
        opened_by="U1",
        opened_at=T0,
        impact_started_at=T0 - timedelta(minutes=5),
    )


async def test_one_incident_per_request_and_resolved_once(database: Database) -> None:
    results = await asyncio.gather(
        *(database.run(lambda s: repo.open_incident(s, _incident("trigger-1"))) for _ in range(4))
    )
    assert sum(created for _, created in results) == 1
    assert len({i.id for i, _ in results}) == 1
    other, created = await database.run(lambda s: repo.open_incident(s, _incident("trigger-2")))
    assert created and other.id != results[0][0].id

    incident_id = results[0][0].id or 0
    await database.run(lambda s: repo.set_fields(s, incident_id, channel_id="C0INC"))
    found = await database.run(lambda s: repo.by_channel(s, "C0INC"))
    assert found is not None and found.id == incident_id

    now = T0 + timedelta(minutes=40)
    first, second = await asyncio.gather(
        database.run(lambda s: repo.resolve(s, incident_id, now, "U1", "rolled back")),
        database.run(lambda s: repo.resolve(s, incident_id, now, "U2", "again")),
    )
    assert sorted([first, second]) == [False, True]
    assert not await database.run(lambda s: repo.set_if_open(s, incident_id, severity="SEV1"))
    resolved = await database.run(
        lambda s: repo.resolved_between(s, ["checkout"], T0 - timedelta(hours=1), now)
    )
    assert [(i.id, i.resolved_at) for i in resolved] == [(incident_id, now)]
    assert len(await database.run(repo.open_incidents)) == 1


async def test_timeline_events_dedupe_by_key(database: Database) -> None:
    incident, _ = await database.run(lambda s: repo.open_incident(s, _incident("t")))
    incident_id = incident.id or 0

    def event(minute: int, text: str, key: str | None) -> IncidentEvent:
        return IncidentEvent(
            incident_id=incident_id,
            at=T0 + timedelta(minutes=minute),
            kind="pin",
            text=text,
            dedupe_key=key,
        )

    added = await asyncio.gather(
        *(
            database.run(lambda s: repo.add_event(s, event(3, "pinned", "pin:C:1")))
            for _ in range(3)
        )
    )
    assert sorted(added) == [False, False, True]
    assert await database.run(lambda s: repo.add_event(s, event(1, "update a", None)))
    assert await database.run(lambda s: repo.add_event(s, event(2, "update b", None)))
    texts = [e.text for e in await database.run(lambda s: repo.events(s, incident_id))]
    assert texts == ["update a", "update b", "pinned"]


async def test_alert_group_compare_and_swap_and_one_poster(database: Database) -> None:
    def group() -> AlertGroup:
        return AlertGroup(group_key="forgebot/{}:{alertname=X}", created_at=T0, updated_at=T0)

    inserted = await asyncio.gather(
        *(database.run(lambda s: alert_groups.insert(s, group())) for _ in range(3))
    )
    assert sum(created for _, created in inserted) == 1
    row = inserted[0][0]
    group_id = row.id or 0
    swaps = await asyncio.gather(
        database.run(lambda s: alert_groups.swap(s, group_id, 0, T0, alerts={"a": 1})),
        database.run(lambda s: alert_groups.swap(s, group_id, 0, T0, alerts={"b": 1})),
    )
    assert sorted(swaps) == [False, True], "a stale version never overwrites"
    claims = await asyncio.gather(
        *(database.run(lambda s: alert_groups.claim_post(s, group_id)) for _ in range(3))
    )
    assert sorted(claims) == [False, False, True]
    fresh = await database.run(lambda s: alert_groups.get(s, group_id))
    assert fresh is not None and fresh.version == 1 and fresh.message_ts == POSTING
    await database.run(lambda s: alert_groups.set_message(s, group_id, "C0", "1.2"))
    by_key = await database.run(lambda s: alert_groups.by_key(s, "forgebot/{}:{alertname=X}"))
    assert by_key is not None and (by_key.channel, by_key.message_ts) == ("C0", "1.2")
    assert [g.id for g in await database.run(lambda s: alert_groups.recent(s, T0))] == [group_id]
