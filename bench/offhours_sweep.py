"""An off-hours shutdown sweep and a wake sweep over 2,000 namespaces x 10 Deployments.

Runs the real bot (SQLite, the fake Slack Web API, the fake Kubernetes API with 20 ms added to
every call) on a simulated clock: one reconcile pass at 19:00 in Berlin puts all 20,000
Deployments to sleep, one at 08:00 the next morning wakes them. Then every Deployment's
replica count is compared with what it was seeded with: the mismatches must be 0.

The baseline is the floor the API sets: one list per namespace and one patch per Deployment
(22,000 calls), each taking the added latency, at most `--concurrency` in flight:
22,000 x 20 ms / 8 = 55 s. Each sweep prints its time as a ratio to that floor (target: under
90 s each, so below 1.64x), the calls it made, and the process's peak RSS during the sweep
(the fake API's 20,000 objects live in this process too, so the bot's share is the growth).

    uv run python bench/offhours_sweep.py [--namespaces 2000] [--deployments 10]
                                          [--latency 0.02] [--concurrency 8]
                                          [--kube fake|real|both]

`--kube real` runs the same sweeps against a real kube-apiserver and etcd on loopback (see
bench/real_kube.py), seeded with paused Deployments: the sweep only reads and patches
Deployment specs, and 5,000 pods would only load the same 2 cores with controller work that
runs on other machines in a real cluster. The 1.20 server serves no batch/v1 CronJobs and no
autoscaling/v2 HPAs, so every environment also reports those APIs as missing (the bot says
so; its Deployments are still handled) and the sweep does not pause to retry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import print_header  # noqa: E402
from bench.real_kube import RealKube, add_option, backends, deployment, load_average  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from core.catalog import parse_catalog  # noqa: E402
from core.clock import ManualClock  # noqa: E402
from core.config import Settings  # noqa: E402
from integrations.sandbox.kube_api import KINDS, FakeKube, start_fake_kube  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from storage import environments as env_repo  # noqa: E402
from storage.models import EnvironmentRecord, EnvState  # noqa: E402

SCHEDULE = "Mon-Fri 08:00-19:00 Europe/Berlin"
AWAKE = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # Tuesday 18:00 in Berlin
SHUTDOWN = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 19:00 in Berlin
WAKE = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # Wednesday 08:00 in Berlin
CATALOG = f"""
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
    sizes: {{M: {{cpu: 4, memory_gib: 8}}}}
    default_ttl: 3d
    max_ttl: 14d
    offhours: {SCHEDULE}
"""
_KIND = {k.kind: k for k in KINDS}


def seed(kube: FakeKube, namespaces: int, deployments: int) -> dict[tuple[str, str], int]:
    """Namespaces with the schedule annotation and Deployments of 1 to 4 replicas."""
    expected: dict[tuple[str, str], int] = {}
    for n in range(namespaces):
        namespace = f"pv-bench-{n:03d}"
        kube.create(
            _KIND["Namespace"],
            "",
            {"metadata": {"name": namespace, "annotations": {"forgebot.io/offhours": SCHEDULE}}},
        )
        for d in range(deployments):
            name, count = f"svc-{d:02d}", (n + d) % 4 + 1
            labels = {"app": name}
            kube.create(
                _KIND["Deployment"],
                namespace,
                {
                    "metadata": {"name": name, "labels": labels},
                    "spec": {
                        "replicas": count,
                        "selector": {"matchLabels": labels},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {"containers": [{"name": "app", "image": "r.example/a:1"}]},
                        },
                    },
                },
            )
            expected[(namespace, name)] = count
    return expected


def counts(kube: FakeKube) -> dict[tuple[str, str], int]:
    return {
        (item["metadata"]["namespace"], item["metadata"]["name"]): int(item["spec"]["replicas"])
        for item in kube.list(_KIND["Deployment"], None)
    }


def rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def seed_real(kube: RealKube, namespaces: int, deployments: int) -> dict[tuple[str, str], int]:
    expected: dict[tuple[str, str], int] = {}
    jobs = []
    for n in range(namespaces):
        namespace = f"pv-bench-{n:03d}"
        kube.post(
            "/api/v1/namespaces",
            {"metadata": {"name": namespace, "annotations": {"forgebot.io/offhours": SCHEDULE}}},
        )
        for d in range(deployments):
            name, count = f"svc-{d:02d}", (n + d) % 4 + 1
            body = deployment(name, count, "r.example/a:1", paused=True)
            path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
            jobs.append(lambda p=path, b=body: kube.post(p, b))
            expected[(namespace, name)] = count
    kube.in_parallel(jobs)
    return expected


def counts_real(kube: RealKube, namespaces: int) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for n in range(namespaces):
        namespace = f"pv-bench-{n:03d}"
        for item in kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"]:
            found[(namespace, item["metadata"]["name"])] = int(item["spec"]["replicas"])
    return found


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespaces", type=int, default=2000)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=8)
    add_option(parser)
    args = parser.parse_args()
    print_header("offhours_sweep")
    for backend in backends(args.kube):
        print(f"== {backend} Kubernetes API server ({load_average()})")
        await run(args, backend)


async def run(args: argparse.Namespace, backend: str) -> None:
    catalog = parse_catalog(CATALOG)
    clock = ManualClock(AWAKE)
    slack = start_fake_slack("xoxb-bench")
    fake = start_fake_kube(clock) if backend == "fake" else None
    real = RealKube(kubelet=False) if backend == "real" else None
    started = time.perf_counter()
    if fake is not None:
        expected = seed(fake.state, args.namespaces, args.deployments)
    else:
        assert real is not None
        expected = seed_real(real, args.namespaces, args.deployments)

    def counted() -> dict[tuple[str, str], int]:
        if fake is not None:
            return counts(fake.state)
        assert real is not None
        return counts_real(real, args.namespaces)

    print(
        f"seeded {args.namespaces} namespaces x {args.deployments} Deployments "
        f"({len(expected)} objects, {sum(expected.values())} replicas) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = (
            fake.write_kubeconfig(Path(tmp) / "kubeconfig", ["dev-cluster"])
            if fake is not None
            else real.kubeconfig(Path(tmp) / "kubeconfig", ["dev-cluster"])  # type: ignore[union-attr]
        )
        settings = Settings(
            SLACK_BOT_TOKEN="xoxb-bench",
            SLACK_SIGNING_SECRET="bench-secret-0123456789",
            SLACK_API_URL=slack.api_url,
            FORGEBOT_DATABASE_URL=f"sqlite:///{tmp}/bench.db",
            FORGEBOT_KUBE_CONCURRENCY=str(args.concurrency),
            KUBECONFIG=str(kubeconfig),
            _env_file=None,
        )
        runtime = Runtime(settings, catalog, clock=clock, run_scheduler=False)
        await runtime.start()
        assert runtime.ctx is not None and runtime.db is not None
        service = runtime.ctx.offhours
        if real is not None:
            service.retry_delays = ()  # the missing 1.20 APIs fail every attempt alike
            # One line per environment about those APIs would bury the figures: summarised below.
            logging.getLogger("commands.offhours").setLevel(logging.ERROR)
        try:
            for n in range(args.namespaces):
                record = EnvironmentRecord(
                    name=f"pv-bench-{n:03d}",
                    template="preview",
                    size="M",
                    team="payments",
                    owner_user_id=f"U0DEV{n:04d}",
                    cluster="dev-cluster",
                    ttl_seconds=86400 * 14,
                    requested_at=AWAKE,
                    updated_at=AWAKE,
                )
                stored = await runtime.db.run(lambda s, r=record: env_repo.insert(s, r))
                await runtime.db.run(
                    lambda s, i=stored.id: env_repo.transition(
                        s, i, expected=[EnvState.PENDING], to=EnvState.ACTIVE, now=AWAKE
                    )
                )
            await runtime.ctx.kube.warm()
            if fake is not None:
                fake.state.faults.latency = args.latency
                print(
                    f"fake API latency {args.latency * 1000:.0f} ms per call, "
                    f"FORGEBOT_KUBE_CONCURRENCY={args.concurrency}"
                )
            else:
                print(
                    "real API server on loopback (no added latency), "
                    f"FORGEBOT_KUBE_CONCURRENCY={args.concurrency}"
                )

            objects = args.namespaces * args.deployments
            floor_calls = args.namespaces + objects
            # The floor is set by the added latency; the real server has none added, so its
            # sweeps are compared with the fake's floor only as a reference.
            floor = floor_calls * args.latency / args.concurrency
            print(
                f"floor: {floor_calls} calls (a list per namespace, a patch per Deployment) x "
                f"{args.latency * 1000:.0f} ms / {args.concurrency} in flight = {floor:.1f} s"
            )
            idle = rss_mb()
            print(f"RSS before the sweeps: {idle:.0f} MB (the fake API's objects included)")
            for label, moment, verb in (("shutdown", SHUTDOWN, "slept"), ("wake", WAKE, "woke")):
                clock.set(moment)
                reset_peak_rss()
                if fake is not None:
                    fake.state.max_in_flight = 0
                    before = len(fake.state.requests)
                else:
                    assert real is not None
                    before = real.requests_served()
                started = time.perf_counter()
                outcomes = await service.reconcile()
                elapsed = time.perf_counter() - started
                if fake is not None:
                    made = len(fake.state.requests) - before
                    calls = (
                        f"{made} API calls ({made / objects:.2f} per Deployment; at the limit "
                        f"they would take {made * args.latency / args.concurrency:.1f} s)"
                    )
                    flight = f"most in flight {fake.state.max_in_flight} (limit {args.concurrency})"
                else:
                    assert real is not None
                    calls = f"{real.requests_served() - before} API requests served (all clients)"
                    flight = f"limit {args.concurrency} in flight"
                ratio = elapsed / floor if floor else float("inf")
                peak = rss_mb("VmHWM")
                acted = sum(1 for o in outcomes if o.acted == verb)
                failed = [o for o in outcomes if o.failures]
                print(
                    f"{label} sweep: {acted}/{len(outcomes)} environments {verb}, "
                    f"{len(failed)} reported failures, {calls} in {elapsed:.2f} s "
                    f"(target < 90 s); ratio to the floor {ratio:.2f}; {flight}; "
                    f"peak RSS {peak:.0f} MB (+{peak - idle:.0f} MB, target < 300 MB)"
                )
                if failed:
                    print(f"  first failure: {failed[0].failures[0][:220]}")
                if label == "shutdown":
                    asleep = counted()
                    awake = sum(1 for v in asleep.values() if v != 0)
                    print(f"  Deployments not at 0 after the shutdown: {awake}")
            restored = counted()
            mismatches = [
                f"{ns}/{name}: expected {want}, found {restored.get((ns, name))}"
                for (ns, name), want in expected.items()
                if restored.get((ns, name)) != want
            ]
            print(f"wake restored original counts: mismatches {len(mismatches)} (must be 0)")
            for line in mismatches[:20]:
                print(f"  {line}")
        finally:
            clock.set(WAKE + timedelta(minutes=1))
            await runtime.stop()
            if fake is not None:
                fake.stop()
            if real is not None:
                real.stop()
            slack.stop()


if __name__ == "__main__":
    asyncio.run(main())
