"""Off-hours storage on SQLite and PostgreSQL: originals are never overwritten, state moves once,
reminders and alerts are claimed once, one open sleep period per environment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlmodel import col, select

from commands.offhours.report import savings
from storage import offhours as repo
from storage.db import Database
from storage.offhours import OffhoursOriginal, OffhoursState

T0 = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


async def test_an_original_is_recorded_once_until_restored(database: Database) -> None:
    first = await database.run(
        lambda s: repo.record_originals(s, "pv-1", [("Deployment", "web", {"replicas": 3})], T0)
    )
    assert first == {("Deployment", "web"): {"replicas": 3}}
    # A second shutdown (or a second replica) sees 0 replicas and must not overwrite the 3.
    again = await database.run(
        lambda s: repo.record_originals(
            s,
            "pv-1",
            [("Deployment", "web", {"replicas": 0}), ("Deployment", "api", {"replicas": 2})],
            T0,
        )
    )
    assert again == {("Deployment", "web"): {"replicas": 3}, ("Deployment", "api"): {"replicas": 2}}
    live = await database.run(lambda s: repo.live_originals(s, "pv-1"))
    assert [(r.name, r.original) for r in live] == [
        ("web", {"replicas": 3}),
        ("api", {"replicas": 2}),
    ]

    await database.run(
        lambda s: repo.close_originals(s, "pv-1", {("Deployment", "web"): "restored 3"}, T0)
    )
    live = await database.run(lambda s: repo.live_originals(s, "pv-1"))
    assert [r.name for r in live] == ["api"]
    # The next night records afresh.
    night = await database.run(
        lambda s: repo.record_originals(s, "pv-1", [("Deployment", "web", {"replicas": 4})], T0)
    )
    assert night == {("Deployment", "web"): {"replicas": 4}}


async def test_concurrent_recorders_agree_on_one_original(database: Database) -> None:
    results = await asyncio.gather(
        *(
            database.run(
                lambda s, n=n: repo.record_originals(
                    s, "pv-1", [("Deployment", "web", {"replicas": n})], T0
                )
            )
            for n in (1, 2, 3, 4)
        )
    )
    values = {r[("Deployment", "web")]["replicas"] for r in results}
    assert len(values) == 1
    assert len(await database.run(lambda s: repo.live_originals(s, "pv-1"))) == 1


async def test_a_large_namespace_is_recorded_and_closed_with_each_outcome(
    database: Database,
) -> None:
    # More objects than one IN list holds, and several outcomes: each row gets its own.
    items = [("Deployment", f"svc-{n:04d}", {"replicas": n % 4 + 1}) for n in range(1200)]
    recorded = await database.run(lambda s: repo.record_originals(s, "pv-big", items, T0))
    assert recorded == {(kind, name): original for kind, name, original in items}
    outcomes = {
        (kind, name): "gone: deleted while asleep"
        if n % 7 == 0
        else f"restored {original['replicas']}"
        for n, (kind, name, original) in enumerate(items[:1100])
    }
    await database.run(lambda s: repo.close_originals(s, "pv-big", outcomes, T0))

    live = await database.run(lambda s: repo.live_originals(s, "pv-big"))
    assert [r.name for r in live] == [name for _, name, _ in items[1100:]]
    closed = await database.run(
        lambda s: s.exec(
            select(OffhoursOriginal).where(col(OffhoursOriginal.live_key).is_(None))
        ).all()
    )
    assert {(r.kind, r.name): r.outcome for r in closed} == outcomes
    assert all(r.restored_at == T0 for r in closed)


async def test_state_reminders_and_alerts_move_once(database: Database) -> None:
    moved = await asyncio.gather(
        *(
            database.run(
                lambda s: repo.move_state(
                    s, "pv-1", expected=OffhoursState.AWAKE, to=OffhoursState.ASLEEP, now=T0
                )
            )
            for _ in range(3)
        )
    )
    assert sorted(moved) == [False, False, True]
    assert await database.run(lambda s: repo.mark_reminded(s, "pv-1", T0, T0))
    assert not await database.run(lambda s: repo.mark_reminded(s, "pv-1", T0, T0))
    later = T0 + timedelta(hours=3)
    assert await database.run(lambda s: repo.mark_reminded(s, "pv-1", later, T0))
    assert await database.run(lambda s: repo.mark_alerted(s, "pv-1", "sleep", T0))
    assert not await database.run(lambda s: repo.mark_alerted(s, "pv-1", "sleep", T0))


async def test_sleep_periods_and_savings(database: Database) -> None:
    for _ in range(2):  # opening twice is one period
        await database.run(lambda s: repo.open_sleep(s, "pv-1", "payments", T0, "0.16", "USD"))
    await database.run(lambda s: repo.close_sleep(s, "pv-1", T0 + timedelta(hours=13)))
    await database.run(
        lambda s: repo.open_sleep(s, "pv-1", "payments", T0 + timedelta(days=1), "0.16", "USD")
    )
    await database.run(
        lambda s: repo.open_sleep(s, "pv-2", "search", T0 + timedelta(hours=1), "1", "USD")
    )
    end = T0 + timedelta(days=1, hours=2)
    sleeps = await database.run(
        lambda s: repo.sleeps_overlapping(s, T0 - timedelta(days=7), end, ["payments"])
    )
    assert len(sleeps) == 2
    [line] = savings(sleeps, T0 - timedelta(days=7), end)
    # 13 h closed plus 2 h of the open period, at 0.16 an hour.
    assert (line.environment, line.hours, line.saved) == ("pv-1", Decimal(15), Decimal("2.40"))
    # Clipped to the window: only the last hour of the first night.
    clipped = savings(sleeps, T0 + timedelta(hours=12), T0 + timedelta(hours=13))
    assert clipped[0].hours == Decimal(1)
