"""100 deploys of different services issued at once, against the fake Kubernetes API with 20 ms
of latency per call.

Runs the real bot (SQLite, the fake Slack Web API, the fake Kubernetes API), sends 100 signed
`/deploy SERVICE 2.0.0 to staging` slash commands concurrently, each from its own channel, and
measures: the ack latency of each command (p50/p99, Slack's deadline is 3 s), the time until
every rollout is followed to the end and recorded, and how often each progress message was
updated (Slack allows about one update per second per message).

The baseline, measured in the same run: a bare slack-bolt app (one `/ping` listener that only
acks, bench/ack_latency.py's BARE_APP) answering the same number of simultaneous signed slash
commands. A burst's ack latency is mostly queueing (the last of 100 requests waits for the 99
before it on one event loop), so the absolute figure says as much about the machine as about
forgebot; the ratio to the bare app is what carries over from one machine to another.

    uv run python bench/deploy_throughput.py [--deploys 100] [--latency 0.02] [--rollout 4]
                                             [--kube fake|real|both]

`--kube real` deploys to a real kube-apiserver on loopback (bench/real_kube.py): the real
Deployment and ReplicaSet controllers roll out, and a fake kubelet binds the pods and reports
them ready (600 pods for 100 deploys); `--latency` and `--rollout` apply to the fake only.

`/forge dora` over 100,000 recorded deploys is measured by bench/dora_query.py.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ack_latency import BARE_APP  # noqa: E402
from bench.processes import bot_environment, free_port, start_forgebot, wait_healthy  # noqa: E402
from bench.provenance import print_header  # noqa: E402
from bench.real_kube import RealKube, add_option, backends, deployment, load_average  # noqa: E402
from integrations.sandbox.kube_api import start_fake_kube  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from integrations.sandbox.slack_payloads import (  # noqa: E402
    SignedSlackClient,
    SlackIdentity,
    slash_command,
)

SECRET = "bench-secret-0123456789"
TOKEN = "xoxb-bench"
TEAMS = 10


def catalog_text(services: int) -> str:
    teams = "\n".join(
        f"  - name: team{t}\n    channel: C0TEAM{t:03d}\n"
        f"    members: [{', '.join(f'U0DEV{i:03d}' for i in range(services) if i % TEAMS == t)}]"
        for t in range(TEAMS)
    )
    entries = "\n".join(
        f"  - name: svc{i:03d}\n    team: team{i % TEAMS}\n"
        f"    image: registry.example.com/bench/svc{i:03d}\n"
        f"    workloads:\n      staging: {{cluster: dev-cluster, namespace: svc{i:03d}, "
        f"deployment: svc{i:03d}, container: app}}"
        for i in range(services)
    )
    return f"""
platform_team: platform
teams:
  - name: platform
    channel: C0PLATFORM
    members: [U0PLATFORM]
{teams}
registries: [registry.example.com]
services:
{entries}
environments:
  - name: staging
    tier: staging
    cluster: dev-cluster
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def outcomes(database: Path) -> list[tuple[str, str, str, str | None]]:
    with sqlite3.connect(database) as conn:
        return list(
            conn.execute("SELECT outcome, service, started_at, finished_at FROM deployments")
        )


async def burst(client: SignedSlackClient, bodies: list[bytes]) -> list[float]:
    """Send every body at once; each request's seconds from send to its ack."""

    async def one(body: bytes) -> float:
        started = time.perf_counter()
        response = await client.send(body)
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}: {response.body[:200]!r}")
        return elapsed

    return list(await asyncio.gather(*[one(body) for body in bodies]))


async def bare_bolt_burst(count: int, response_url: str) -> list[float]:
    """`count` simultaneous `/ping` commands to a bare slack-bolt app in its own process."""
    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(port), SECRET], cwd=ROOT, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    client = SignedSlackClient(url, SECRET)
    try:
        await wait_healthy(url, time.perf_counter())
        who = [
            SlackIdentity(user_id=f"U0DEV{i:03d}", channel_id=f"C0DEV{i:03d}") for i in range(count)
        ]
        await burst(client, [slash_command(w, "/ping", "", response_url) for w in who[:10]])
        return await burst(client, [slash_command(w, "/ping", "", response_url) for w in who])
    finally:
        await client.close()
        bare.terminate()
        bare.wait(10)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--rollout", type=float, default=4.0, help="seconds a rollout takes")
    add_option(parser)
    args = parser.parse_args()
    print_header("deploy_throughput")
    for backend in backends(args.kube):
        print(f"== {backend} Kubernetes API server ({load_average()})")
        await run(args, backend)


async def run(args: argparse.Namespace, backend: str) -> None:
    slack = start_fake_slack(TOKEN)
    kube = start_fake_kube() if backend == "fake" else None
    real = RealKube(kubelet=True) if backend == "real" else None
    seeded = time.perf_counter()
    for i in range(args.deploys):
        name, image = f"svc{i:03d}", f"registry.example.com/bench/svc{i:03d}:1.0.0"
        if kube is not None:
            kube.state.seed_deployment(name, name, image, replicas=3)
        else:
            assert real is not None
            real.post("/api/v1/namespaces", {"metadata": {"name": name}})
            real.post(f"/apis/apps/v1/namespaces/{name}/deployments", deployment(name, 3, image))
    if real is not None:
        while True:  # every seeded Deployment available before the deploys start
            ready = sum(
                1
                for i in range(args.deploys)
                if (
                    real.get(f"/apis/apps/v1/namespaces/svc{i:03d}/deployments/svc{i:03d}").get(
                        "status"
                    )
                    or {}
                ).get("availableReplicas")
                == 3
            )
            if ready == args.deploys:
                break
            if time.perf_counter() - seeded > 600:
                raise SystemExit(f"only {ready}/{args.deploys} seeded Deployments became available")
            time.sleep(1)
        print(
            f"seeded {args.deploys} Deployments of 3 replicas, available after "
            f"{time.perf_counter() - seeded:.1f} s (real controllers, fake kubelet)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="forgebot-bench-"))
    database = workdir / "bench.db"
    (workdir / "catalog.yaml").write_text(catalog_text(args.deploys), encoding="utf-8")
    port = free_port()
    env = bot_environment(
        token=TOKEN,
        secret=SECRET,
        slack_api_url=slack.api_url,
        database=database,
        catalog=workdir / "catalog.yaml",
        KUBECONFIG=str(
            kube.write_kubeconfig(workdir / "kubeconfig", ["dev-cluster"])
            if kube is not None
            else real.kubeconfig(workdir / "kubeconfig", ["dev-cluster"])  # type: ignore[union-attr]
        ),
    )
    bot = start_forgebot(env, port)
    url = f"http://127.0.0.1:{port}"
    client = SignedSlackClient(url, SECRET)
    try:
        await wait_healthy(url, time.perf_counter(), path="/readyz")
        await asyncio.sleep(3)  # the bot warms its Kubernetes client in the background
        if kube is not None:
            kube.state.faults.latency = args.latency
            kube.state.rollout_seconds = args.rollout
        # The baseline first, while the bot is idle: the same burst to a bare bolt app.
        bare_acks = await bare_bolt_burst(args.deploys, slack.new_response_url())
        slack.state.reset()
        bodies = [
            slash_command(
                SlackIdentity(
                    user_id=f"U0DEV{i:03d}", channel_id=f"C0DEV{i:03d}", channel_name=f"dev{i}"
                ),
                "/deploy",
                f"svc{i:03d} 2.0.0 to staging",
                slack.new_response_url(),
            )
            for i in range(args.deploys)
        ]
        started = time.perf_counter()
        acks = await burst(client, bodies)
        acked = time.perf_counter() - started

        deadline = time.monotonic() + 120
        rows = outcomes(database)
        while time.monotonic() < deadline:
            rows = outcomes(database)
            if len(rows) == args.deploys and all(r[0] != "in_progress" for r in rows):
                break
            await asyncio.sleep(0.05)
        finished = time.perf_counter() - started
        await asyncio.sleep(1.5)  # the last paced updates
        succeeded = sum(1 for r in rows if r[0] == "succeeded")

        updates: dict[tuple[str, str], list[float]] = defaultdict(list)
        for call in slack.state.calls:
            if call.method == "chat.update":
                updates[(str(call.args["channel"]), str(call.args["ts"]))].append(call.at)
        worst_rate = 0
        for times in updates.values():
            times.sort()
            # The most updates any one message received within one second.
            window = 0
            for j, t in enumerate(times):
                while times[window] <= t - 1.0:
                    window += 1
                worst_rate = max(worst_rate, j - window + 1)
        gaps = [b - a for times in updates.values() for a, b in itertools.pairwise(times)]

        ms = [a * 1000 for a in acks]
        bare_ms = [a * 1000 for a in bare_acks]
        print(
            f"{args.deploys} deploys of different services at once, "
            + (
                f"{args.latency * 1000:.0f} ms per Kubernetes call, rollouts of {args.rollout:.0f} s"
                if kube is not None
                else "real API server and controllers, fake kubelet"
            )
        )
        print(
            f"ack: p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
            f"max {max(ms):.1f} ms (Slack's deadline 3000 ms); "
            f"all {args.deploys} acked {acked * 1000:.0f} ms after the first was sent"
        )
        print(
            f"bare bolt app, {args.deploys} /ping at once: p50 {statistics.median(bare_ms):.1f} ms, "
            f"p99 {percentile(bare_ms, 0.99):.1f} ms"
        )
        ratio = percentile(ms, 0.99) / percentile(bare_ms, 0.99)
        print(
            f"ack p99 ratio forgebot/bare: {ratio:.2f} (target <= 1.3; and p99 < 100 ms "
            f"absolute on a quiet 2-core machine)"
        )
        print(
            f"rollouts: {succeeded}/{args.deploys} succeeded, all followed to the end and "
            f"recorded {finished:.2f} s after the first command"
        )
        print(
            f"progress messages: {len(updates)}, updated {sum(len(t) for t in updates.values())} "
            f"times; most updates of one message within any 1 s: {worst_rate} (target ≤ 1); "
            f"shortest gap between two updates of one message: {min(gaps, default=0):.2f} s"
        )
        if kube is not None:
            print(
                f"most requests in flight at the Kubernetes API server: {kube.state.max_in_flight}"
            )
        if succeeded < args.deploys:
            failed = [r for r in rows if r[0] != "succeeded"][:3]
            print(f"  not succeeded (first 3): {failed}")
    finally:
        await client.close()
        bot.terminate()
        bot.wait(timeout=30)
        if kube is not None:
            kube.stop()
        if real is not None:
            real.stop()
        slack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
