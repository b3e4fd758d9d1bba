"""Two replicas through a rolling restart: replica B starts while replica A runs a provisioning
and a deploy (B's start-up recovery must not take them), then A gets SIGTERM in the middle of
both. A finishes what it can within its shutdown budget and hands the rest over at once; B
finishes it. Each operation ends once, each side effect is made once, each person told once."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.faults.scenarios import (
    Deploy,
    Mark,
    Provision,
    Stage,
    describe,
    settle,
)

BUDGET = 90.0


@pytest.mark.postgres
async def test_sigterm_mid_operation_during_a_rolling_restart(
    stage: Stage, logs_on_failure: None
) -> None:
    kube = stage.ledger.kube
    if stage.current is None or not stage.current.alive:
        await stage.boot("replica")
    old = stage.current
    assert old is not None
    new = stage.fleet.start("replica-new")
    await stage.fleet.ready(new)  # both live: B's start-up recovery has run
    provision, deploy = Provision(), Deploy()
    mark = Mark.now(stage.ledger)
    slow = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        # Slow enough that SIGTERM lands in the middle: each Kubernetes call takes 0.3 s and a
        # rollout 8 s to become ready.
        kube.faults.latency = 0.3
        kube.rollout_seconds = 8.0
        seen = 0

        def second_write(_: object) -> None:
            nonlocal seen
            seen += 1
            if seen == 2:
                loop.call_soon_threadsafe(slow.set)

        kube.after_write = second_write
        await asyncio.gather(provision.act(stage), deploy.act(stage))  # to replica A
        await asyncio.wait_for(slow.wait(), 30)
        old.process.send_signal(signal.SIGTERM)  # the rolling update replaces A
        assert await stage.fleet.exited(old, 30) == 0, "A shut down gracefully"
        stage.current = new
        await stage.flows.use(new)
        for scenario in (provision, deploy):
            verdict = await settle(stage, scenario, mark, within=BUDGET)
            assert not verdict.problems(), describe(verdict)
            assert all(r.state == "succeeded" for r in verdict.rows), describe(verdict)
    finally:
        kube.after_write = None
        kube.faults.latency = 0.0
        kube.rollout_seconds = 0.0
    assert new.alive
