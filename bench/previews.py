"""Pull-request previews under a webhook flood, against fakes with 20 ms of latency per call.

Runs the real bot (SQLite, the fake Slack Web API, the fake Kubernetes API, the fake GitHub
API) and opens 200 pull requests at once through signed `POST /api/webhooks/github`
deliveries. Prints each delivery's answer time (acked within 1 s each is the target),
webhook-to-ready p50/p99 (the preview's namespace, quota, limit range, role binding, network
policies, Deployment, Service and Ingress, its rollout followed to ready), and the most calls
the Kubernetes and GitHub fakes ever saw in flight (the Kubernetes limit is the bot's
FORGEBOT_KUBE_CONCURRENCY).

    uv run python bench/previews.py [--prs 200] [--latency 0.02] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.runtime import Runtime  # noqa: E402
from core.catalog import parse_catalog  # noqa: E402
from core.config import Settings  # noqa: E402
from integrations.codehost.webhooks import github_signature  # noqa: E402
from integrations.sandbox.codehost_api import (  # noqa: E402
    github_pull_request,
    start_fake_codehost,
)
from integrations.sandbox.kube_api import start_fake_kube  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from storage import previews as repo  # noqa: E402
from storage.previews import PreviewPhase  # noqa: E402

SECRET = "bench-webhook-secret"
TOKEN = "bench-codehost-token"
CATALOG = """
platform_team: platform
teams:
  - name: platform
    channel: C0PLATFORM
    members: [U0PLATFORM]
  - name: payments
    channel: C0PAYMENTS
    members: [U0DEV]
services:
  - name: checkout
    team: payments
    image: registry.example.com/payments/checkout
templates:
  - name: preview
    description: pull request previews
    cluster: dev-cluster
    approval: auto
    sizes: {S: {cpu: 1, memory_gib: 2}}
    default_ttl: 2d
    max_ttl: 7d
previews:
  - repository: acme/checkout
    service: checkout
    template: preview
    host: "pr-{number}.checkout.preview.example.com"
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    slack = start_fake_slack("xoxb-bench")
    kube = start_fake_kube()
    codehost = start_fake_codehost(TOKEN)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            SLACK_BOT_TOKEN="xoxb-bench",
            SLACK_SIGNING_SECRET="bench-secret-0123456789",
            SLACK_API_URL=slack.api_url,
            FORGEBOT_DATABASE_URL=f"sqlite:///{tmp}/bench.db",
            FORGEBOT_KUBE_CONCURRENCY=str(args.concurrency),
            FORGEBOT_GITHUB_WEBHOOK_SECRET=SECRET,
            FORGEBOT_GITHUB_TOKEN=TOKEN,
            FORGEBOT_GITHUB_API_URL=codehost.github_url,
            KUBECONFIG=str(kube.write_kubeconfig(Path(tmp) / "kubeconfig", ["dev-cluster"])),
            _env_file=None,
        )
        runtime = Runtime(settings, parse_catalog(CATALOG), run_scheduler=False)
        await runtime.start()
        assert runtime.ctx is not None and runtime.db is not None
        ctx, db = runtime.ctx, runtime.db
        try:
            await ctx.kube.warm()  # the bot warms its clients in the background at start-up
            kube.state.faults.latency = args.latency
            codehost.state.latency = args.latency
            kube.state.max_in_flight = 0
            url = f"{runtime.url}/api/webhooks/github"
            sent: dict[int, datetime] = {}
            acks: list[float] = []

            async def deliver(session: aiohttp.ClientSession, number: int) -> None:
                payload = github_pull_request(
                    "acme/checkout", number, "opened", f"{number:040x}", "2026-11-24T10:00:00Z"
                )
                body = json.dumps(payload).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "pull_request",
                    "X-GitHub-Delivery": f"bench-{number}",
                    "X-Hub-Signature-256": github_signature(SECRET, body),
                }
                sent[number] = datetime.now(UTC)
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == 202, await response.text()
                acks.append(time.perf_counter() - started)

            flood_started = time.perf_counter()
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=args.prs)
            ) as session:
                await asyncio.gather(*(deliver(session, n) for n in range(1, args.prs + 1)))
            await ctx.operations.wait_idle()
            total = time.perf_counter() - flood_started
            previews = await db.run(lambda s: repo.live(s))
            ready = [p for p in previews if p.phase == PreviewPhase.READY and p.ready_at]
            latencies = [
                ((p.ready_at - sent[p.number]).total_seconds())  # type: ignore[operator]
                for p in ready
            ]
            print(
                f"{args.prs} pull requests opened at once, {args.latency * 1000:.0f} ms per API "
                f"call, Kubernetes concurrency {args.concurrency}"
            )
            print(
                f"webhook answered: p50 {statistics.median(acks) * 1000:.0f} ms, "
                f"p99 {percentile(acks, 0.99) * 1000:.0f} ms, max {max(acks) * 1000:.0f} ms "
                "(target: each under 1 s)"
            )
            print(f"ready: {len(ready)}/{args.prs} in {total:.1f} s")
            if latencies:
                print(
                    f"webhook-to-ready: p50 {statistics.median(latencies):.1f} s, "
                    f"p99 {percentile(latencies, 0.99):.1f} s"
                )
            print(
                f"peak in flight: Kubernetes API {kube.state.max_in_flight} "
                f"(limit {args.concurrency}), GitHub API {codehost.state.max_in_flight}"
            )
            print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            await runtime.stop(drain_seconds=2)
            codehost.stop()
            kube.stop()
            slack.stop()


if __name__ == "__main__":
    asyncio.run(main())
