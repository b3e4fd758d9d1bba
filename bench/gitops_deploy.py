"""50 GitOps deploys of 50 services in one desired-state repository, all at once.

Starts a real Git server on loopback (`git http-backend` behind the test suite's token-checking
HTTP server, tests/fixtures/git_server.py), creates one repository holding 50 Kustomize
overlays, then pushes one commit per service concurrently, each through the code the bot runs:

- `queued` (what the bot does): `GitOpsDelivery.push`, which queues pushes to one repository
  and branch inside the process and bounds Git connections (`--concurrency`);
- `unqueued` (for comparison): the same `DesiredStateRepo.change` from `--concurrency` threads
  with no queue, so every push races the others and rebases when the branch moved.

It prints, for each: commits made, retries on non-fast-forward (rebases), time until all were
pushed, the peak of open connections the Git server saw, and checks that every service's
field holds its new version and that the branch has exactly one commit per deploy.

    uv run python bench/gitops_deploy.py [--services 50] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from commands.deploy.gitops import CommitRequest, GitOpsDelivery, operation_tag  # noqa: E402
from core.catalog_gitops import GitOpsController, GitOpsTarget  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from integrations.git.repository import (  # noqa: E402
    DesiredStateRepo,
    FieldChange,
    Identity,
    Pushed,
)
from tests.fixtures.git_server import TOKEN, GitServer, git, git_binary, service_layouts  # noqa: E402

BOT = Identity("forgebot", "forgebot@users.noreply.invalid")


def _target(url: str, index: int) -> GitOpsTarget:
    return GitOpsTarget(
        repository=url,
        credentials="env:FORGEBOT_BENCH_GIT_TOKEN",
        file=f"apps/svc-{index:02d}/kustomization.yaml",
        kustomize_image=f"registry.example.com/bench/svc-{index:02d}",
        controller=GitOpsController(kind="argocd", name=f"svc-{index:02d}"),
    )


async def queued(url: str, services: int, concurrency: int) -> list[Pushed]:
    # push() touches neither the database nor Kubernetes: only the catalog-free Git path.
    delivery = GitOpsDelivery(
        cast(Any, None), cast(Any, None), SystemClock(), cast(Any, None), concurrency=concurrency
    )
    requests = [
        delivery.push(
            _target(url, i),
            CommitRequest(
                subject=f"Deploy svc-{i:02d} 2.0.0 to staging",
                value="2.0.0",
                expect="1.0.0",
                requester="U0BENCH",
                slack_channel="C0BENCH",
                slack_ts=f"1790000000.{i:06d}",
                idempotency_key=f"deploy:bench-{i}",
            ),
        )
        for i in range(services)
    ]
    return list(await asyncio.gather(*requests))


def unqueued(url: str, services: int, concurrency: int) -> list[Pushed]:
    def one(index: int) -> Pushed:
        target = _target(url, index)
        change = FieldChange(
            target.file,
            target.field,
            "2.0.0",
            "1.0.0",
            f"Deploy svc-{index:02d} 2.0.0 to staging",
            operation_tag(f"deploy:bench-raw-{index}"),
        )
        repo = DesiredStateRepo(url, "main", TOKEN, BOT, max_attempts=100)
        from datetime import UTC, datetime

        return repo.change(change, datetime.now(UTC))

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(services)))


def run(mode: str, root: Path, services: int, concurrency: int) -> dict[str, Any]:
    server = GitServer(root / mode).start()
    server.root.mkdir(parents=True, exist_ok=True)
    try:
        url = server.create("desired-state", service_layouts(services))
        started = time.perf_counter()
        if mode == "queued":
            pushed = asyncio.run(queued(url, services, concurrency))
        else:
            pushed = unqueued(url, services, concurrency)
        elapsed = time.perf_counter() - started
        bare = server.bare("desired-state")
        commits = len(git("log", "--format=%H", cwd=bare).split()) - 1
        wrong = [
            i
            for i in range(services)
            if "newTag: 2.0.0"
            not in server.show("desired-state", "main", f"apps/svc-{i:02d}/kustomization.yaml")
        ]
        return {
            "commits": commits,
            "created": sum(p.created for p in pushed),
            "retries": sum(p.attempts - 1 for p in pushed),
            "seconds": elapsed,
            "peak_connections": server.peak_connections,
            "requests": len(server.requests),
            "wrong": len(wrong),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if git_binary() is None:
        sys.exit("git with git-http-backend is needed on PATH (apt-get install git)")
    os.environ["FORGEBOT_BENCH_GIT_TOKEN"] = TOKEN
    root = Path(tempfile.mkdtemp(prefix="forgebot-gitops-bench-"))
    try:
        print(
            f"{args.services} deploys of {args.services} services to one repository at once, "
            f"Git concurrency {args.concurrency}; load average {os.getloadavg()[0]:.2f} "
            f"on {os.cpu_count()} cores; {subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.strip()}"
        )
        print(
            f"{'mode':<10} {'commits':>7} {'retries (non-FF)':>17} {'all pushed':>11} "
            f"{'peak conns':>10} {'HTTP requests':>13} {'fields wrong':>12}"
        )
        for mode in ("queued", "unqueued"):
            r = run(mode, root, args.services, args.concurrency)
            print(
                f"{mode:<10} {r['commits']:>7} {r['retries']:>17} {r['seconds']:>10.2f}s "
                f"{r['peak_connections']:>10} {r['requests']:>13} {r['wrong']:>12}"
            )
            if r["commits"] != args.services or r["wrong"]:
                sys.exit(f"{mode}: expected {args.services} commits with every field set")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
