"""Pull-request previews under a webhook flood, against fakes with 20 ms of latency per call.

Runs the real bot (SQLite, the fake Slack Web API, the fake Kubernetes API, the fake GitHub
API) and opens 200 pull requests at once through signed `POST /api/webhooks/github`
deliveries, sent from another process (as the code host would). Runs on SQLite, then on
PostgreSQL (a scratch database at `--postgres`). Prints each delivery's answer time as the
sender saw it (acked within 1 s each is the target), how many transactions recorded them,
webhook-to-ready p50/p99 (the preview's namespace, quota, limit range, role binding, network
policies, Deployment, Service and Ingress, its rollout followed to ready), and the most calls
the Kubernetes and GitHub fakes ever saw in flight (the Kubernetes limit is the bot's
FORGEBOT_KUBE_CONCURRENCY).

    uv run python bench/previews.py [--prs 200] [--latency 0.02] [--concurrency 8]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres | --postgres '']
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
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import print_header  # noqa: E402
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
from storage import migrate  # noqa: E402
from storage import previews as repo  # noqa: E402
from storage.db import make_engine  # noqa: E402
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


def send_flood(url: str, prs: int) -> Coroutine[Any, Any, dict[int, tuple[float, float, int]]]:
    """The code host's side, in its own process (`--send`): `prs` signed deliveries at once;
    returns each one's send time (epoch seconds), answer time and status."""

    async def flood() -> dict[int, tuple[float, float, int]]:
        results: dict[int, tuple[float, float, int]] = {}
        bodies = {
            n: json.dumps(
                github_pull_request(
                    "acme/checkout", n, "opened", f"{n:040x}", "2026-11-24T10:00:00Z"
                )
            ).encode()
            for n in range(1, prs + 1)
        }

        async def deliver(session: aiohttp.ClientSession, number: int) -> None:
            body = bodies[number]
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": f"bench-{number}",
                "X-Hub-Signature-256": github_signature(SECRET, body),
            }
            sent, started = time.time(), time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                results[number] = (sent, time.perf_counter() - started, response.status)

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=prs)) as session:
            await asyncio.gather(*(deliver(session, n) for n in range(1, prs + 1)))
        return results

    return flood()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("FORGEBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="an admin URL: a scratch database is created there and dropped after ('' skips)",
    )
    parser.add_argument("--send", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        print(json.dumps(await send_flood(args.send, args.prs)))
        return
    print_header("previews")
    with tempfile.TemporaryDirectory() as tmp:
        await run(args, "SQLite", f"sqlite:///{tmp}/bench.db")
    if not args.postgres:
        return
    import psycopg

    name = f"forgebot_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: {str(exc).splitlines()[0]}")
        return
    url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)  # `forgebot db upgrade`, as a deployment runs it
        engine.dispose()
        await run(args, "PostgreSQL", url)
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(args: argparse.Namespace, label: str, database_url: str) -> None:
    slack = start_fake_slack("xoxb-bench")
    kube = start_fake_kube()
    codehost = start_fake_codehost(TOKEN)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            SLACK_BOT_TOKEN="xoxb-bench",
            SLACK_SIGNING_SECRET="bench-secret-0123456789",
            SLACK_API_URL=slack.api_url,
            FORGEBOT_DATABASE_URL=database_url,
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
        assert runtime.ctx.previews is not None
        ctx, db, previews_service = runtime.ctx, runtime.db, runtime.ctx.previews
        try:
            await ctx.kube.warm()  # the bot warms its clients in the background at start-up
            kube.state.faults.latency = args.latency
            codehost.state.latency = args.latency
            kube.state.max_in_flight = 0
            url = f"{runtime.url}/api/webhooks/github"
            load_before = os.getloadavg()
            flood_started = time.perf_counter()
            # The sender is another process, as GitHub is: sharing this event loop (and its
            # GIL) with the server would add the client's own work to every answer time.
            sender = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--send",
                url,
                "--prs",
                str(args.prs),
                stdout=asyncio.subprocess.PIPE,
            )
            output, _ = await sender.communicate()
            print(f"({label}: the flood is answered; provisioning...)", file=sys.stderr, flush=True)
            answered = {int(k): v for k, v in json.loads(output).items()}
            load_at_answers = os.getloadavg()
            statuses = {status for _, _, status in answered.values()}
            assert statuses == {202}, statuses
            acks = [ack for _, ack, _ in answered.values()]
            # Ready is the preview's state; the Slack messages, paced per channel as Slack
            # asks, are still being sent (200 previews in one channel take minutes).
            await ctx.operations.wait_idle()
            total = time.perf_counter() - flood_started
            found = await db.run(lambda s: repo.live(s))
            ready = [p for p in found if p.phase == PreviewPhase.READY and p.ready_at]
            latencies = [
                p.ready_at.timestamp() - answered[p.number][0]  # type: ignore[union-attr]
                for p in ready
            ]
            print(
                f"== {label}: {args.prs} pull requests opened at once, {args.latency * 1000:.0f} "
                f"ms per API call, Kubernetes concurrency {args.concurrency}"
            )
            print(
                f"webhook answered (seen by the sender): p50 {statistics.median(acks) * 1000:.0f}"
                f" ms, p99 {percentile(acks, 0.99) * 1000:.0f} ms, max {max(acks) * 1000:.0f} ms "
                "(target: each under 1 s)"
            )
            print(
                f"deliveries recorded in {previews_service.intake.transactions} transactions "
                "before their answers"
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
            print(
                "load average: before the flood "
                + " ".join(f"{x:.2f}" for x in load_before)
                + ", at the last answer "
                + " ".join(f"{x:.2f}" for x in load_at_answers)
                + ", at the end "
                + " ".join(f"{x:.2f}" for x in os.getloadavg())
            )
        finally:
            await runtime.stop(drain_seconds=2)
            codehost.stop()
            kube.stop()
            slack.stop()


if __name__ == "__main__":
    asyncio.run(main())
