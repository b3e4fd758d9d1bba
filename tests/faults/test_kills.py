"""`kill -9` at every step of every operation kind, then a restart: each operation ends once,
within its deadline plus one recovery interval, with each side effect made once and the person
told the outcome once. The bot kills itself at the named step (the fault hook, `core/faults.py`);
the bot started to recover is the next case's bot."""

from __future__ import annotations

import aiohttp
import pytest

from tests.faults.fleet import until
from tests.faults.scenarios import SCENARIOS, Mark, Stage, describe, settle, steps

CASES = [
    pytest.param(kind, step, id=f"{kind}-{step}")
    for kind, make in SCENARIOS.items()
    for step in steps(make())
]
BUDGET = 60.0
"""Seconds from a request to its outcome told, kill and restart included: the lease (2 s) and
the recovery interval (1 s) are short here; the rest is a process start on a busy machine."""


@pytest.mark.postgres
@pytest.mark.parametrize(("kind", "step"), CASES)
async def test_kill_at_each_step_and_restart(
    stage: Stage, kind: str, step: str, logs_on_failure: None
) -> None:
    scenario = SCENARIOS[kind]()
    if stage.current is None or not stage.current.alive:
        await stage.boot()
    assert stage.current is not None
    await scenario.prepare(stage)
    victim = stage.current
    mark = Mark.now(stage.ledger)
    stage.fleet.arm(victim, step)
    try:
        await scenario.act(stage)
    except (aiohttp.ClientError, AssertionError):
        # Killed before it answered (a request acked only once durable): Slack shows the
        # person an error, and the request, already written, is still carried out.
        await stage.fleet.exited(victim, 10)
    await stage.fleet.exited(victim, 30)
    assert victim.process.returncode == -9, "killed by its fault hook at " + step
    await stage.boot()  # the restarted pod
    verdict = await settle(stage, scenario, mark, within=BUDGET)
    assert not verdict.problems(), describe(verdict)
    for row in verdict.rows:
        assert row.finished_at <= row.deadline_at, "terminal within its deadline"
    assert all(r.state == "succeeded" for r in verdict.rows), describe(verdict)
    await until(lambda: stage.current is not None and stage.current.alive, 1, "the bot alive")
