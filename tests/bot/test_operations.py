"""The operation runner on a real database: acts once, records failures, resumes after a crash."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from core.clock import ManualClock
from core.errors import Conflict
from core.operations import OperationRunner
from storage import operations as repo
from storage.db import Database
from storage.models import Operation, OperationState


def _runner(database: Database) -> tuple[OperationRunner, list[dict[str, Any]]]:
    runner = OperationRunner(database, ManualClock(datetime(2026, 11, 24, tzinfo=UTC)))
    seen: list[dict[str, Any]] = []

    async def handler(op: Operation) -> dict[str, Any]:
        seen.append(op.payload)
        if op.payload.get("fail"):
            raise Conflict("the environment is already being deleted")
        return {"done": op.payload["n"]}

    runner.register("test.work", handler)
    return runner, seen


async def test_same_key_acts_once(database: Database) -> None:
    runner, seen = _runner(database)
    submissions = await asyncio.gather(
        *[
            runner.submit("test.work", {"n": 1}, idempotency_key="click:approve:42")
            for _ in range(5)
        ]
    )
    await runner.wait_idle()
    assert sum(s.created for s in submissions) == 1
    assert seen == [{"n": 1}]
    row = await database.run(lambda s: repo.by_key(s, "click:approve:42"))
    assert row is not None and row.state == OperationState.SUCCEEDED and row.result == {"done": 1}


async def test_failure_is_recorded_with_a_human_reason(database: Database) -> None:
    runner, _ = _runner(database)
    failures: list[str] = []

    async def on_failure(op: Operation, reason: str) -> None:
        failures.append(reason)

    runner.register("test.other", lambda op: runner._handlers["test.work"](op), on_failure)
    submission = await runner.submit("test.other", {"n": 2, "fail": True}, idempotency_key="k-fail")
    await runner.wait_idle()
    row = await database.run(lambda s: repo.get(s, submission.operation.id))
    assert row is not None and row.state == OperationState.FAILED
    assert row.error == "the environment is already being deleted"
    assert failures == ["the environment is already being deleted"]


async def test_unexpected_errors_are_not_leaked(database: Database) -> None:
    runner = OperationRunner(database, ManualClock(datetime(2026, 11, 24, tzinfo=UTC)))

    async def broken(op: Operation) -> None:
        raise KeyError("secret-internal-detail")

    runner.register("test.broken", broken)
    submission = await runner.submit("test.broken", {}, idempotency_key="k-broken")
    await runner.wait_idle()
    row = await database.run(lambda s: repo.get(s, submission.operation.id))
    assert row is not None and row.state == OperationState.FAILED
    assert "secret-internal-detail" not in row.error and "internal error" in row.error


async def test_restart_resumes_unfinished_operations(database: Database) -> None:
    crashed, _ = _runner(database)
    # A process accepted one operation and was running another when it died.
    await crashed.submit("test.work", {"n": 7}, idempotency_key="k-accepted", start=False)
    running = await crashed.submit("test.work", {"n": 8}, idempotency_key="k-running", start=False)
    now = datetime(2026, 11, 24, tzinfo=UTC)
    await database.run(
        lambda s: repo.transition(
            s,
            running.operation.id,
            expected=[OperationState.ACCEPTED],
            to=OperationState.RUNNING,
            now=now,
        )
    )
    # The new process must not take over before the dead one's leases expire (it cannot tell
    # a dead owner from a live one on another replica until then).
    restarted, seen = _runner(database)
    assert await restarted.recover() == 0 and seen == []
    restarted._clock.advance(timedelta(seconds=restarted.lease_seconds + 1))  # type: ignore[attr-defined]
    assert await restarted.recover() == 2
    await restarted.wait_idle()
    assert sorted(p["n"] for p in seen) == [7, 8]
    assert await database.run(repo.unfinished) == []
