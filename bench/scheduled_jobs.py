"""The scheduled jobs at scale: the TTL sweep over 2,000 environments, the budget check for
200 teams and the SLO burn-rate alert check over 500 SLOs.

Each runs the real bot in this process (SQLite, the fake Slack Web API) and times one run of
the job's body, as the scheduler would call it:

- TTL sweep: 2,000 active environments on the fake Kubernetes API (20 ms per call), of which
  200 have expired (their deletion starts) and 200 are due a reminder; the rest are not due.
- Budget check: 200 teams with a monthly budget, their costs answered by a Cost Explorer
  stand-in (the sandbox's cost model) that takes `--aws-latency` per call, as Cost Explorer
  does (it is slow: 100 ms to a second).
- SLO alert check: 500 SLOs (167 services x 3) over 35 days of synthetic data in a real
  Prometheus (backfilled with promtool; skipped when `prometheus` is not on PATH).

    uv run python bench/scheduled_jobs.py [--environments 2000] [--teams 200] [--slos 500]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import print_header  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from core.catalog import Catalog, parse_catalog  # noqa: E402
from core.clock import ManualClock  # noqa: E402
from core.config import Settings  # noqa: E402
from integrations.aws.cost_types import (  # noqa: E402
    CostQuery,
    CostReport,
    DateRange,
    Forecast,
    Granularity,
    TagFilter,
)
from integrations.aws.cost_wire import merge_pages  # noqa: E402
from integrations.sandbox.aws_seed import DemoCostModel  # noqa: E402
from integrations.sandbox.kube_api import start_fake_kube  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from storage import environments as env_repo  # noqa: E402
from storage.models import EnvironmentRecord, EnvState  # noqa: E402

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TOKEN = "xoxb-bench-jobs"
SECRET = "bench-secret-0123456789"


def settings(slack_url: str, workdir: Path, **extra: Any) -> Settings:
    return Settings(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack_url,
        FORGEBOT_DATABASE_URL=f"sqlite:///{workdir / f'bench-{time.monotonic_ns()}.db'}",
        FORGEBOT_COST_FORECAST="linear",
        _env_file=None,
        **extra,
    )


# --- TTL sweep -------------------------------------------------------------------------------
TTL_CATALOG = """
platform_team: platform
teams:
  - name: platform
    channel: C0PLATFORM
    members: [U0PLATFORM]
  - name: payments
    channel: C0PAYMENTS
    members: [U0DEV0000]
templates:
  - name: preview
    description: a preview namespace
    cluster: dev-cluster
    approval: auto
    sizes: {M: {cpu: 4, memory_gib: 8}}
    default_ttl: 3d
    max_ttl: 14d
"""


async def ttl_sweep(count: int, latency: float, workdir: Path) -> None:
    slack = start_fake_slack(TOKEN)
    clock = ManualClock(NOW)
    kube = start_fake_kube(clock)
    runtime = Runtime(
        settings(
            slack.api_url,
            workdir,
            KUBECONFIG=str(kube.write_kubeconfig(workdir / "kubeconfig", ["dev-cluster"])),
        ),
        parse_catalog(TTL_CATALOG),
        clock=clock,
        run_scheduler=False,
    )
    await runtime.start()
    assert runtime.ctx is not None and runtime.db is not None
    try:
        reminders = sorted(runtime.ctx.catalog.schedules.ttl_reminders)
        soon = reminders[0] / 2 if reminders else timedelta(hours=1)
        expired = due = 0
        for n in range(count):
            name = f"pv-ttl-{n:04d}"
            kube.state.seed_namespace(name)
            if n % 10 == 0:
                expires, expired = NOW - timedelta(minutes=5), expired + 1
            elif n % 10 == 1:
                expires, due = NOW + soon, due + 1
            else:
                expires = NOW + timedelta(days=10)
            record = EnvironmentRecord(
                name=name,
                template="preview",
                size="M",
                team="payments",
                owner_user_id=f"U0DEV{n:04d}",
                cluster="dev-cluster",
                ttl_seconds=86400 * 14,
                requested_at=NOW - timedelta(days=2),
                updated_at=NOW - timedelta(days=2),
            )
            stored = await runtime.db.run(lambda s, r=record: env_repo.insert(s, r))
            await runtime.db.run(
                lambda s, i=stored.id, e=expires: env_repo.transition(
                    s, i, expected=[EnvState.PENDING], to=EnvState.ACTIVE, now=NOW, expires_at=e
                )
            )
        await runtime.ctx.kube.warm()
        kube.state.faults.latency = latency
        slack.state.reset()
        service = runtime.ctx.environments
        started = time.perf_counter()
        await service.sweep_expiry(NOW)
        elapsed = time.perf_counter() - started
        await runtime.ctx.operations.wait_idle()  # the deletions the sweep started
        deleted = time.perf_counter() - started
        active = await runtime.db.run(
            lambda s: sum(1 for r in env_repo.live(s) if r.state == EnvState.ACTIVE)
        )
        print(
            f"TTL sweep: {count} active environments ({expired} expired, {due} due a reminder) "
            f"in {elapsed:.2f} s; {count - active} deleted, the last {deleted:.2f} s after the "
            "sweep began; "
            f"{len(slack.state.find('chat.postMessage'))} messages sent"
        )
    finally:
        await runtime.stop(drain_seconds=5)
        kube.stop()
        slack.stop()


# --- budget check ----------------------------------------------------------------------------
class ModelCostSource:
    """Answers Cost Explorer's questions from the sandbox's cost model, `latency` late."""

    def __init__(self, model: DemoCostModel, latency: float) -> None:
        self.model, self.latency, self.calls = model, latency, 0

    async def cost_and_usage(
        self,
        period: DateRange,
        granularity: Granularity,
        *,
        filter_tag: TagFilter | tuple[str, str] | None = None,
        group_by: str | None = None,
    ) -> CostReport:
        self.calls += 1
        await asyncio.sleep(self.latency)
        query = CostQuery(
            period=period,
            granularity=granularity,
            filter_tag=TagFilter(*filter_tag) if isinstance(filter_tag, tuple) else filter_tag,
            group_by=group_by,
        )
        return merge_pages(query, [self.model.respond(query)])

    async def forecast(
        self, period: DateRange, *, filter_tag: TagFilter | tuple[str, str] | None = None
    ) -> Forecast:
        raise NotImplementedError("the bench uses the linear forecast")


def budget_catalog(teams: int) -> Catalog:
    return Catalog.model_validate(
        {
            "platform_team": "team000",
            "teams": [
                {"name": f"team{t:03d}", "channel": f"C0T{t:03d}", "members": [f"U0T{t:03d}"]}
                for t in range(teams)
            ],
            # Every fourth team is over 80 % of its budget: an alert to post.
            "budgets": [
                {"team": f"team{t:03d}", "monthly": 500 if t % 4 == 0 else 100_000}
                for t in range(teams)
            ],
        }
    )


async def budget_check(teams: int, latency: float, workdir: Path) -> None:
    slack = start_fake_slack(TOKEN)
    clock = ManualClock(NOW)
    spend = {f"team{t:03d}": {"Amazon EC2": Decimal("40")} for t in range(teams)}
    source = ModelCostSource(DemoCostModel(today=date(2026, 11, 24), daily_spend=spend), latency)
    runtime = Runtime(
        settings(slack.api_url, workdir, KUBECONFIG=str(workdir / "no-kubeconfig")),
        budget_catalog(teams),
        clock=clock,
        run_scheduler=False,
        cost_source=source,
    )
    await runtime.start()
    assert runtime.ctx is not None
    try:
        alerts = runtime.ctx.budget_alerts
        started = time.perf_counter()
        posted = await alerts.check()
        elapsed = time.perf_counter() - started
        print(
            f"budget check: {teams} teams in {elapsed:.2f} s ({source.calls} cost queries at "
            f"{latency * 1000:.0f} ms each, {posted} alerts posted, {len(alerts.failed)} failed)"
        )
    finally:
        await runtime.stop(drain_seconds=5)
        slack.stop()


# --- SLO alert check -------------------------------------------------------------------------
async def slo_alert_check(slos: int, workdir: Path) -> None:
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        print("SLO alert check: skipped (prometheus and promtool are not on PATH)")
        return
    from bench import slo_query
    from integrations.sandbox.prometheus_server import start_prometheus

    services = math.ceil(slos / 3)
    slo_query.SERVICES = services
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    started = time.perf_counter()
    prometheus = start_prometheus(slo_query.stories(), end, workdir / "prometheus")
    print(
        f"  (Prometheus backfilled with {services} services x 35 days in {time.perf_counter() - started:.0f} s)"
    )
    slack = start_fake_slack(TOKEN)
    clock = ManualClock(end + timedelta(seconds=30))
    runtime = Runtime(
        settings(slack.api_url, workdir, PROMETHEUS_URL=prometheus.url),
        slo_query.catalog(),
        clock=clock,
        run_scheduler=False,
    )
    try:
        await runtime.start()
        assert runtime.ctx is not None
        alerts = runtime.ctx.slo_alerts
        prometheus_client = runtime.ctx.prometheus
        assert prometheus_client is not None
        # The first run opens the alert episodes; the next is the steady state.
        for label in ("first run, opens the alerts", "next run"):
            sent = prometheus_client.queries_sent
            started = time.perf_counter()
            run = await alerts.run()
            elapsed = time.perf_counter() - started
            print(
                f"SLO alert check: {services * 3} SLOs in {elapsed:.2f} s ({label}: "
                f"{len(run.fired)} fired, {len(run.resolved)} resolved, {prometheus_client.queries_sent - sent} "
                "Prometheus queries)"
            )
    finally:
        await runtime.stop(drain_seconds=5)
        slack.stop()
        prometheus.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--environments", type=int, default=2000)
    parser.add_argument("--teams", type=int, default=200)
    parser.add_argument("--slos", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.02, help="per Kubernetes call")
    parser.add_argument("--aws-latency", type=float, default=0.3, help="per Cost Explorer call")
    args = parser.parse_args()
    print_header("scheduled_jobs")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # 0 skips a job.
        if args.environments:
            await ttl_sweep(args.environments, args.latency, workdir)
        if args.teams:
            await budget_check(args.teams, args.aws_latency, workdir)
        if args.slos:
            await slo_alert_check(args.slos, workdir)


if __name__ == "__main__":
    asyncio.run(main())
