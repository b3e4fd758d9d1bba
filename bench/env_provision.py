"""Provisioning against the fake Kubernetes API with 20 ms of latency per call.

Runs the real bot (SQLite, the fake Slack Web API, the fake Kubernetes API) and measures:
one environment provisioned on its own; then 50 requests approved at once, until all are
active, with the most requests the API server ever saw in flight against the configured limit.

    uv run python bench/env_provision.py [--latency 0.02] [--concurrency 8]
                                         [--kube fake|real|both]

`--kube real` provisions on a real kube-apiserver on loopback (bench/real_kube.py) as the
identity deploy/kubernetes gives the bot: real validation, RBAC (the `edit` RoleBinding needs
`bind`), admission and etcd writes, with no added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import print_header  # noqa: E402
from bench.real_kube import RealKube, add_option, backends, load_average  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from commands.environments.parse import RequestForm  # noqa: E402
from core.auth import Actor  # noqa: E402
from core.catalog import parse_catalog  # noqa: E402
from core.config import Settings  # noqa: E402
from integrations.sandbox.kube_api import start_fake_kube  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from storage import environments as env_repo  # noqa: E402
from storage.models import EnvState  # noqa: E402

USERS = [f"U0DEV{i:03d}" for i in range(50)]
CATALOG = f"""
platform_team: platform
teams:
  - name: platform
    channel: C0PLATFORM
    members: [U0PLATFORM]
  - name: payments
    channel: C0PAYMENTS
    members: [{", ".join(USERS)}]
templates:
  - name: auto
    description: provisioned at once
    cluster: dev-cluster
    approval: auto
    sizes: {{S: {{cpu: 2, memory_gib: 4}}}}
    default_ttl: 3d
    max_ttl: 7d
  - name: gated
    description: approved by the platform team
    cluster: dev-cluster
    approval: platform
    sizes: {{S: {{cpu: 2, memory_gib: 4}}}}
    default_ttl: 3d
    max_ttl: 7d
"""


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=8)
    add_option(parser)
    args = parser.parse_args()
    print_header("env_provision")
    for backend in backends(args.kube):
        print(f"== {backend} Kubernetes API server ({load_average()})")
        await run(args, backend)


async def run(args: argparse.Namespace, backend: str) -> None:
    catalog = parse_catalog(CATALOG)
    slack = start_fake_slack("xoxb-bench")
    fake = start_fake_kube() if backend == "fake" else None
    real = RealKube(kubelet=False) if backend == "real" else None
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = (
            fake.write_kubeconfig(Path(tmp) / "kubeconfig", ["dev-cluster"])
            if fake is not None
            else real.kubeconfig(Path(tmp) / "kubeconfig", ["dev-cluster"])  # type: ignore[union-attr]
        )
        latency = f"{args.latency * 1000:.0f} ms per API call" if fake else "real API server"
        settings = Settings(
            SLACK_BOT_TOKEN="xoxb-bench",
            SLACK_SIGNING_SECRET="bench-secret-0123456789",
            SLACK_API_URL=slack.api_url,
            FORGEBOT_DATABASE_URL=f"sqlite:///{tmp}/bench.db",
            FORGEBOT_KUBE_CONCURRENCY=str(args.concurrency),
            KUBECONFIG=str(kubeconfig),
            _env_file=None,
        )
        runtime = Runtime(settings, catalog, run_scheduler=False)
        await runtime.start()
        assert runtime.ctx is not None and runtime.db is not None
        service = runtime.ctx.environments
        if fake is not None:
            fake.state.faults.latency = args.latency
        try:
            # The bot warms its Kubernetes clients in the background at start-up; wait for that.
            await runtime.ctx.kube.warm()
            started = time.perf_counter()
            record = await service.request(
                Actor(USERS[0]), RequestForm("auto", "solo", "S", timedelta(days=1), "")
            )
            while (
                await runtime.db.run(lambda s: env_repo.get(s, record.id))
            ).state != EnvState.ACTIVE:  # type: ignore[union-attr]
                await asyncio.sleep(0.005)
            single = time.perf_counter() - started
            await runtime.ctx.operations.wait_idle()
            notified = time.perf_counter() - started
            print(
                f"one environment, {latency}: active in {single:.2f} s (target < 1 s); "
                f"owner's 'ready' DM sent after {notified:.2f} s (Slack pacing: 1 message/s per channel)"
            )

            records = [
                await service.request(
                    Actor(user), RequestForm("gated", f"env-{i:02d}", "S", timedelta(days=1), "")
                )
                for i, user in enumerate(USERS)
            ]
            if fake is not None:
                fake.state.max_in_flight = 0
            else:
                assert real is not None
                served = real.requests_served()
            started = time.perf_counter()
            await asyncio.gather(
                *[service.decide(Actor("U0PLATFORM"), r.id, approve=True) for r in records]
            )
            await runtime.ctx.operations.wait_idle()
            elapsed = time.perf_counter() - started
            states = await runtime.db.run(lambda s: [env_repo.get(s, r.id).state for r in records])  # type: ignore[union-attr]
            active = sum(1 for state in states if state == EnvState.ACTIVE)
            print(f"50 approved at once: {active}/50 active in {elapsed:.2f} s (target < 10 s)")
            if fake is not None:
                print(
                    f"most requests in flight at the API server: {fake.state.max_in_flight} (limit {args.concurrency})"
                )
            else:
                assert real is not None
                print(
                    f"API requests served meanwhile (all clients): {real.requests_served() - served}"
                )
        finally:
            await runtime.stop()
            if fake is not None:
                fake.stop()
            if real is not None:
                real.stop()
            slack.stop()


if __name__ == "__main__":
    asyncio.run(main())
