"""Cutting the bot's work between a click's ack and its completion, as a crash or a rollout of
a new pod would: hold the work inside a Kubernetes call (the fake API server's latency), stop
the runtime there, and start a new one on the same database, as the next pod would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.runtime import Runtime
from integrations.sandbox.kube_api import FakeKube


async def stop_inside_kubernetes_call(runtime: Runtime, kube: FakeKube) -> None:
    """Wait (bounded) until the bot is inside a call to the (slowed) fake API, then stop it
    with no time to finish: what was acked is cut short there."""
    deadline = time.monotonic() + 10
    while kube.in_flight == 0:
        assert time.monotonic() < deadline, "the acked work never reached Kubernetes"
        await asyncio.sleep(0.01)
    await runtime.stop(drain_seconds=0.1)
    kube.faults.latency = 0.0


@asynccontextmanager
async def next_replica(stopped: Runtime) -> AsyncIterator[Runtime]:
    """A new runtime on the stopped one's database and clock (its start-up recovery runs)."""
    again = Runtime(stopped.settings, stopped.catalog, clock=stopped.clock, run_scheduler=False)
    await again.start()
    assert again.ctx is not None
    again.ctx.rollouts.poll_seconds = 0.02
    try:
        yield again
    finally:
        await again.stop()
