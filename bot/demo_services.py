"""The demo's slow sandbox servers, started behind the prompt.

Prometheus (backfilled with 35 days of synthetic metrics by promtool) and moto (AWS, with
seeded Cost Explorer answers) take seconds to start. Their ports are chosen first, so the bot
is configured with their URLs at once; they start in worker threads while you type, and each
says when it is ready. Until then `/slo` and `/cost` answer that their data source is still
starting, like any unavailable dependency.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.runtime import Runtime
from core.clock import SystemClock
from integrations.aws.cost_explorer import CostExplorerGateway
from integrations.sandbox.prometheus_server import (
    HOW_TO_INSTALL,
    PrometheusNotInstalled,
    RunningPrometheus,
    binaries,
    free_port,
    start_prometheus,
)
from integrations.sandbox.slo_data import demo_stories

log = logging.getLogger(__name__)

SLO_READY = (
    "SLOs are ready: a local Prometheus holds 35 days of synthetic metrics; try /slo "
    "(checkout is burning its budget now, ledger spent its budget last week)."
)
COST_READY = (
    "Costs are ready: moto plays AWS Cost Explorer; try /cost or /forge budget "
    "(the daily budget check ran: teams over budget were alerted in their channels)."
)


@dataclass
class DemoServices:
    workdir: Path
    notify: Callable[[str], None]
    prometheus_url: str | None = None
    moto_url: str | None = None
    slo_note: str = ""
    prometheus: RunningPrometheus | None = None
    _stop_moto: Callable[[], None] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            binaries()
        except PrometheusNotInstalled:
            self.slo_note = f"SLOs: no SLO data in this demo: {HOW_TO_INSTALL}."
        else:
            self.prometheus_url = f"http://127.0.0.1:{free_port()}"
        if importlib.util.find_spec("moto") is not None:
            self.moto_url = f"http://127.0.0.1:{free_port()}"

    def cost_source(self) -> CostExplorerGateway | None:
        if self.moto_url is None:
            return None
        from integrations.sandbox.aws_seed import sandbox_clients

        return CostExplorerGateway(sandbox_clients(self.moto_url), SystemClock())

    @property
    def starting(self) -> list[str]:
        servers = (("Prometheus", self.prometheus_url), ("moto", self.moto_url))
        return [name for name, url in servers if url]

    def start(self, runtime: Runtime) -> None:
        """Start both in the background; each calls `notify` when it is ready (or failed)."""
        if self.prometheus_url is not None:
            self._tasks.append(asyncio.create_task(self._start_prometheus()))
        if self.moto_url is not None:
            self._tasks.append(asyncio.create_task(self._start_moto(runtime)))

    async def ready(self) -> None:
        """Wait until every background start has finished (scripts wait, people need not)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _start_prometheus(self) -> None:
        assert self.prometheus_url is not None
        # The data runs two hours past now, so the demo's windows stay full while you try it.
        shift = timedelta(hours=2)
        end = datetime.now(UTC).replace(second=0, microsecond=0) + shift
        port = int(self.prometheus_url.rsplit(":", 1)[1])
        try:
            self.prometheus = await asyncio.to_thread(
                start_prometheus, demo_stories(shift), end, self.workdir / "prometheus", port=port
            )
        except Exception as exc:  # the demo goes on without SLO data
            log.info("demo Prometheus did not start", exc_info=True)
            self.notify(f"SLOs: no SLO data in this demo: Prometheus did not start ({exc}).")
            return
        self.notify(SLO_READY)

    async def _start_moto(self, runtime: Runtime) -> None:
        assert self.moto_url is not None
        from commands.cost.demo import seed_and_warm
        from integrations.sandbox.aws_seed import start_moto

        try:
            _, self._stop_moto = await asyncio.to_thread(
                start_moto, int(self.moto_url.rsplit(":", 1)[1])
            )
            assert runtime.ctx is not None
            await seed_and_warm(runtime.ctx.cost, self.moto_url, runtime.ctx.catalog)
            # The daily budget check, once now: a team forecast over its budget is announced in
            # its channel, as the bot would at the alert time.
            alerts = runtime.ctx.budget_alerts
            if alerts is not None:
                await alerts.check()
        except Exception as exc:  # the demo goes on without cost data
            log.info("demo moto did not start", exc_info=True)
            self.notify(f"Costs: no cost data in this demo: moto did not start ({exc}).")
            return
        self.notify(COST_READY)

    async def stop(self) -> None:
        # A start runs in a worker thread and cannot be cancelled there: let it finish, then
        # stop what it started, so no server outlives the demo.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.prometheus is not None:
            self.prometheus.stop()
        if self._stop_moto is not None:
            self._stop_moto()
