"""The database cut at every step of every operation kind, and restored a few seconds later
(longer than a lease): each operation ends once, its outcome written when the database is back,
each side effect made once, and the person told once. The cut comes from inside a fake, right
after the step's Kubernetes write is applied or as the outcome message arrives, through the
loopback proxy in front of the bot's PostgreSQL (never the server itself)."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.scenarios import SCENARIOS, Mark, Outage, Stage, describe, settle

OUTAGE_SECONDS = 3.0
"""Longer than the bots' lease here (2 s): the runner cannot renew, stops acting, and recovery
(every second) takes the operation over once the database is back."""
CASES = [
    pytest.param(kind, step, id=f"{kind}-{step}")
    for kind, make in SCENARIOS.items()
    for step in [f"kube.write#{n}" for n in range(1, make().writes + 1)] + ["outcome message"]
]
BUDGET = 60.0


@pytest.mark.postgres
@pytest.mark.parametrize(("kind", "step"), CASES)
async def test_database_cut_at_each_step_and_restored(
    stage: Stage, kind: str, step: str, logs_on_failure: None
) -> None:
    scenario = SCENARIOS[kind]()
    if stage.current is None or not stage.current.alive:
        await stage.boot()
    await scenario.prepare(stage)
    mark = Mark.now(stage.ledger)
    outage = Outage(stage)
    if step.startswith("kube.write#"):
        outage.at_kube_write(int(step.split("#")[1]))
    else:
        outage.at_message(scenario.outcome())
    acting = asyncio.create_task(scenario.act(stage))
    try:
        await asyncio.wait_for(outage.cut.wait(), 30)
        await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself
    finally:
        await outage.restore()
    await acting
    verdict = await settle(stage, scenario, mark, within=BUDGET)
    # Cut as the outcome message arrives: its record (written after Slack answered) waits for
    # the database, the runner loses its lease meanwhile and the re-run may tell again.
    retold = step == "outcome message"
    assert not verdict.problems(retold=retold), describe(verdict, retold=retold)
    assert all(r.state == "succeeded" for r in verdict.rows), describe(verdict)
    assert stage.current is not None and stage.current.alive, "the bot lived through it"
