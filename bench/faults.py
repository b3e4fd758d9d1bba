"""Random faults under a stream of deploys and provisionings, against two real replicas.

Two `forgebot serve` processes (HTTP mode) share a PostgreSQL database made for the run, reached
through a loopback TCP proxy; the fake Slack Web API and the fake Kubernetes API server record
what reaches them. Each round sends a deploy and an environment request to a live replica,
then injects one random fault while they run:

- a database outage of 1-30 s (the proxy cut, then restored; `--outage-scale` shrinks it and
  the output says so);
- a kill: `kill -9` of a replica (the one that took the requests, mostly), started again;
- a replica restart: SIGTERM to a replica and a new one started (a rolling update).

After each round it waits for the round's operations to be terminal and the people told, then
counts. Printed: operations started, terminal, stuck (not terminal within the bound, or a
request whose operation never started), side
effects made twice (effective Kubernetes writes per object, counted at the fake API server),
people not told the outcome (no message at the fake Slack), and outcomes told twice (the one
at-least-once window of the contract, docs/durability.md). Goal: stuck 0, duplicated 0, not
told 0.

    uv run python bench/faults.py [--faults 200] [--quick] [--outage-scale 1.0] [--seed 1]
                                  [--time-limit SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import load_average, print_header  # noqa: E402
from integrations.sandbox.kube_api import start_fake_kube  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from tests.faults.fleet import (  # noqa: E402
    BOT_TOKEN,
    IMAGE,
    TERMINAL,
    Bot,
    Fleet,
    Flows,
    Ledger,
    fresh_database,
)
from tests.faults.scenarios import (  # noqa: E402
    Deploy,
    Mark,
    Provision,
    Scenario,
    Stage,
    Verdict,
    settle,
)
from tests.fixtures.slack import SANDBOX_USERGROUPS, SANDBOX_USERS  # noqa: E402
from tests.tcp_proxy import TcpProxy  # noqa: E402

BOUND = 120.0
"""Seconds a round's operations get to be terminal and told (the deadline is 30 min; a process
start on a busy machine, the lease and a recovery interval fit well within this)."""


class Replicas:
    """Two replicas kept running: a killed or stopped one is replaced at once."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.live: list[Bot] = []
        self.ready: set[str] = set()
        self.starting: set[asyncio.Task[None]] = set()
        self.count = 0

    async def start(self) -> Bot:
        self.count += 1
        bot = self.fleet.start(f"replica-{self.count}")
        self.live.append(bot)
        await self.fleet.ready(bot, timeout=180)
        self.ready.add(bot.name)
        return bot

    def replace(self, bot: Bot) -> None:
        self.live.remove(bot)
        self.ready.discard(bot.name)
        task = asyncio.create_task(self._replacement())
        self.starting.add(task)
        task.add_done_callback(self.starting.discard)

    async def _replacement(self) -> None:
        # A pod that cannot reach the database at start-up exits; Kubernetes starts it again.
        for _ in range(10):
            try:
                await self.start()
                return
            except AssertionError as exc:
                print(f"  (a replica exited at start-up, started again: {str(exc)[:80]})")

    async def any_ready(self) -> Bot:
        while True:
            ready = [b for b in self.live if b.name in self.ready and b.alive]
            if ready:
                return random.choice(ready)
            await asyncio.sleep(0.1)


async def inject(kind: str, replicas: Replicas, target: Bot, stage: Stage, outage: float) -> str:
    if kind == "outage":
        await stage.proxy.cut()
        await asyncio.sleep(outage)
        await stage.proxy.restore()
        return f"outage {outage:.1f} s"
    victim = (
        target
        if random.random() < 0.7 or len(replicas.live) < 2
        else random.choice([b for b in replicas.live if b is not target])
    )
    if kind == "kill":
        replicas.fleet.kill(victim)
        replicas.replace(victim)
        return f"kill -9 {victim.name}"
    replicas.fleet.terminate(victim)
    replicas.replace(victim)
    await asyncio.to_thread(victim.process.wait, 30)
    return f"restart {victim.name}"


async def run(faults: int, outage_scale: float, seed: int, time_limit: float) -> int:
    random.seed(seed)
    slack = start_fake_slack(BOT_TOKEN, usergroups=SANDBOX_USERGROUPS, users=SANDBOX_USERS)
    kube_server = start_fake_kube()
    kube = kube_server.state
    kube.seed_deployment("checkout-staging", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    tally: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    problems: list[str] = []
    injected = 0
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name, fresh_database() as url:
        tmp = Path(tmp_name)
        kubeconfig = kube_server.write_kubeconfig(
            tmp / "kubeconfig", ["dev-cluster", "prod-cluster"]
        )
        proxy = TcpProxy("127.0.0.1", 5432)
        await proxy.start()
        fleet = Fleet(
            tmp, url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), slack.api_url, kubeconfig
        )
        flows = Flows(slack)
        stage = Stage(fleet, proxy, flows, Ledger(url, kube, slack))
        replicas = Replicas(fleet)
        try:
            await asyncio.gather(replicas.start(), replicas.start())
            for number in range(1, faults + 1):
                if time.monotonic() - began > time_limit:
                    print(f"time limit reached after {number - 1} faults", flush=True)
                    break
                target = await replicas.any_ready()
                await flows.use(target)
                stage.current = target
                scenarios: list[Scenario] = [Deploy(), Provision()]
                mark = Mark.now(stage.ledger)
                await asyncio.gather(*(s.act(stage) for s in scenarios))
                kind = random.choice(["outage", "kill", "restart"])
                kinds[kind] += 1
                injected += 1
                await asyncio.sleep(random.uniform(0, 1.5))  # somewhere in the operations
                outage = random.uniform(1, 30) * outage_scale
                what = await inject(kind, replicas, target, stage, outage)
                verdicts: list[Verdict] = []
                for scenario in scenarios:
                    verdict = await settle(stage, scenario, mark, within=BOUND + outage)
                    verdicts.append(verdict)
                    tally["started"] += len(verdict.rows)
                    tally["terminal"] += sum(r.state in TERMINAL for r in verdict.rows)
                    tally["succeeded"] += sum(r.state == "succeeded" for r in verdict.rows)
                    tally["stuck"] += len(verdict.stuck) + len(verdict.never)
                    tally["duplicated"] += len(verdict.duplicated)
                    tally["not told"] += verdict.told == 0
                    tally["told twice"] += verdict.told > 1
                    for problem in verdict.problems(retold=True):
                        problems.append(f"round {number} ({what}): {scenario.name}: {problem}")
                print(
                    f"round {number:>4}: {what:<24} "
                    + "; ".join(
                        f"{s.name} {','.join(r.state for r in v.rows) or 'no row'} told {v.told}"
                        for s, v in zip(scenarios, verdicts, strict=True)
                    ),
                    flush=True,
                )
        finally:
            await flows.close()
            for task in list(replicas.starting):
                task.cancel()
            fleet.stop_all()
            await proxy.cut()
            slack.stop()
            kube_server.stop()
    one, five, _ = load_average()
    print()
    print(f"faults injected:            {injected} of {faults} asked ({dict(kinds)})")
    if outage_scale != 1.0:
        print(
            f"  database outages scaled by {outage_scale}: "
            f"{outage_scale:.2f}-{30 * outage_scale:.1f} s instead of 1-30 s"
        )
    print(f"operations started:         {tally['started']}")
    print(f"operations terminal:        {tally['terminal']} ({tally['succeeded']} succeeded)")
    print(f"operations stuck:           {tally['stuck']}")
    print(f"duplicated side effects:    {tally['duplicated']}")
    print(f"users not told:             {tally['not told']}")
    print(f"outcome told twice:         {tally['told twice']} (the at-least-once window)")
    print(
        f"wall time:                  {time.monotonic() - began:.0f} s; "
        f"load average at the end: {one:.2f} / {five:.2f}"
    )
    for problem in problems:
        print("  " + problem)
    return 0 if not (tally["stuck"] or tally["duplicated"] or tally["not told"]) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--faults", type=int, default=200, help="how many faults (rounds)")
    parser.add_argument("--quick", action="store_true", help="6 faults, outages scaled by 0.1")
    parser.add_argument(
        "--outage-scale",
        type=float,
        default=1.0,
        help="multiply the 1-30 s database outages by this (said in the output)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=float("inf"),
        help="stop injecting after this many seconds (the output says how many were injected)",
    )
    args = parser.parse_args()
    faults, scale = args.faults, args.outage_scale
    if args.quick:
        faults, scale = 6, min(scale, 0.1)
    print_header("faults")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return asyncio.run(run(faults, scale, args.seed, args.time_limit))


if __name__ == "__main__":
    raise SystemExit(main())
