"""Load test: two `forgebot serve` replicas on PostgreSQL behind a loopback round-robin proxy.

Signed slash commands (the MIX table below) arrive at a fixed rate (open loop: a slow answer
never slows the sender down), through a TCP proxy that hands each new connection to the next
replica, as a Kubernetes Service does. The same rate then drives a bare slack-bolt app (one
`/ping` handler that only acks) in the same run, for the ratio. Commands that are not built
(yet) answer a friendly "not a forgebot command", which still exercises the whole ack path.

Prints the achieved rate, p50/p99/max ack latency, errors (non-200, timeouts, or an ack that
says something went wrong), how the replicas shared the load, and forgebot/bare ratios.

    uv run python bench/load.py [--rate 200] [--duration 60] [--bare-duration 20]

Needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres; FORGEBOT_TEST_PG overrides); a
fresh database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ack_latency import BARE_APP, pct  # noqa: E402
from bench.processes import free_port, wait_healthy  # noqa: E402
from bench.provenance import print_header  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from integrations.sandbox.slack_payloads import (  # noqa: E402
    SignedSlackClient,
    SlackIdentity,
    slash_command,
)

# (weight, slash command, text): the traffic mix, in percent.
MIX: list[tuple[int, str, str]] = [
    (30, "/forge", "help"),
    (25, "/forge", "env list"),
    (20, "/forge", "deploy checkout v1.2.3 to staging"),
    (15, "/forge", "slo checkout"),
    (10, "/forge", "cost payments"),
]
USERS = [
    SlackIdentity(user_id="U0DEVELOPER", user_name="dev", channel_id="C0PAYMENTS"),
    SlackIdentity(user_id="U0PLATFORM", user_name="plat", channel_id="C0PLATFORM"),
    SlackIdentity(user_id="U0ONCALL", user_name="oncall", channel_id="C0PAYMENTS"),
]
SECRET = "bench-signing-secret-0123456789abcdef"
TOKEN = "xoxb-bench-token"
PG_ADMIN_URL = os.environ.get("FORGEBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SERVE = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1"]
FAILED_ACK = re.compile(r"Something went wrong|temporarily unavailable", re.I)


class RoundRobinProxy:
    """Each accepted connection goes to the next backend; bytes are copied both ways."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self._next = itertools.cycle(backends)
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*next(self._next))
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    sent: int = 0
    elapsed: float = 0.0
    late: float = 0.0
    """The sender's worst lag behind its schedule (s): large means the client was the limit."""

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)


async def drive(
    url: str,
    rate: float,
    duration: float,
    response_url: str,
    requests: list[tuple[str, str]],
) -> Result:
    """Send at `rate` per second for `duration` seconds, cycling through `requests`."""
    client = SignedSlackClient(url, SECRET)
    result = Result()
    total = int(rate * duration)
    tasks: list[asyncio.Task[None]] = []

    async def one(i: int) -> None:
        command, text = requests[i % len(requests)]
        who = USERS[i % len(USERS)]
        try:
            response = await asyncio.wait_for(
                client.send(slash_command(who, command, text, response_url)), 10
            )
        except Exception as exc:
            result.error(f"{command} {text}: {type(exc).__name__}")
            return
        result.latencies.append(response.elapsed)
        if response.status != 200:
            result.error(f"{command} {text}: HTTP {response.status}")
        elif FAILED_ACK.search(response.body):
            result.error(f"{command} {text}: {response.body[:120]}")

    started = time.perf_counter()
    for i in range(total):
        due = started + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            result.late = max(result.late, -wait)
        tasks.append(asyncio.create_task(one(i)))
        result.sent += 1
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - started
    await client.close()
    return result


def mix_sequence(count: int, seed: int = 7) -> list[tuple[str, str]]:
    population = [(command, text) for _, command, text in MIX]
    weights = [weight for weight, _, _ in MIX]
    return random.Random(seed).choices(population, weights, k=count)


async def requests_served(url: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("forgebot_slack_requests_total{")
    )


def report(name: str, result: Result) -> None:
    lat = result.latencies or [float("nan")]
    print(
        f"{name:>9} | {result.sent / result.elapsed:8.1f} | {pct(lat, 0.5):7.2f} | "
        f"{pct(lat, 0.99):7.2f} | {max(lat) * 1000:8.2f} | {result.errors:6d} | "
        f"{result.late * 1000:7.1f}"
    )
    for sample in result.error_samples:
        print(f"{'':>9}   error: {sample}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="commands per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument(
        "--bare-duration", type=float, default=None, help="seconds on the bare app (default: 20)"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up load")
    args = parser.parse_args()
    print_header("load")
    bare_duration = args.bare_duration if args.bare_duration is not None else min(args.duration, 20)

    fake = start_fake_slack(TOKEN)
    workdir = Path(tempfile.mkdtemp(prefix="forgebot-load-"))
    name = f"forgebot_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
        "FORGEBOT_DATABASE_URL": database_url,
        "FORGEBOT_CATALOG": str(ROOT / "catalog.example.yaml"),
        "FORGEBOT_LOG_LEVEL": "WARNING",
        "FORGEBOT_LOG_FORMAT": "json",
        "KUBECONFIG": str(workdir / "no-kubeconfig"),
    }
    processes: list[subprocess.Popen[bytes]] = []
    proxy: RoundRobinProxy | None = None
    try:
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "db", "upgrade"],
            env=env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        ports = [free_port(), free_port()]
        for replica, port in zip("ab", ports, strict=True):
            log = (workdir / f"replica-{replica}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [*SERVE, "--port", str(port)],
                    env={**env, "FORGEBOT_REPLICA": f"replica-{replica}"},
                    cwd=ROOT,
                    stderr=log,
                )
            )
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url in urls:
            await wait_healthy(url, time.perf_counter(), timeout=60, path="/readyz")
        proxy = RoundRobinProxy([("127.0.0.1", port) for port in ports])
        await proxy.start()
        proxy_url = f"http://127.0.0.1:{proxy.port}"

        bare_port = free_port()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", BARE_APP, str(bare_port), SECRET],
                cwd=ROOT,
                stderr=subprocess.DEVNULL,
            )
        )
        bare_url = f"http://127.0.0.1:{bare_port}"
        await wait_healthy(bare_url, time.perf_counter(), timeout=30)

        response_url = fake.new_response_url()
        mix = mix_sequence(max(1, int(args.rate * args.duration)))
        print(f"mix: {', '.join(f'{w}% {c} {t}' for w, c, t in MIX)}")
        print(
            f"target: {args.rate:.0f} commands/s for {args.duration:.0f} s through a round-robin "
            f"proxy to 2 replicas on PostgreSQL; bare bolt app for {bare_duration:.0f} s"
        )
        await drive(proxy_url, args.rate, args.warmup, response_url, mix)
        await drive(bare_url, args.rate, min(args.warmup, 2), response_url, [("/ping", "")])
        before = [await requests_served(url) for url in urls]
        forge = await drive(proxy_url, args.rate, args.duration, response_url, mix)
        after = [await requests_served(url) for url in urls]
        bare = await drive(bare_url, args.rate, bare_duration, response_url, [("/ping", "")])

        print(
            f"{'app':>9} | {'cmd/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>8} | "
            f"{'errors':>6} | {'lag ms':>7}"
        )
        report("forgebot", forge)
        report("bare", bare)
        print(
            f"{'ratio':>9} | {'':>8} | {pct(forge.latencies, 0.5) / pct(bare.latencies, 0.5):7.2f} | "
            f"{pct(forge.latencies, 0.99) / pct(bare.latencies, 0.99):7.2f} |"
        )
        shares = [b - a for a, b in zip(before, after, strict=True)]
        print(
            "replicas served: "
            + ", ".join(f"{r}: {int(s)}" for r, s in zip("ab", shares, strict=True))
        )
        verdict = (
            forge.errors == 0
            and pct(forge.latencies, 0.99) < 100
            and forge.sent / forge.elapsed >= 0.98 * args.rate
        )
        print(
            f"target (>= {args.rate:.0f}/s, p99 < 100 ms, 0 errors): "
            f"{'met' if verdict else 'NOT met'}"
        )
    finally:
        if proxy is not None:
            await proxy.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
        fake.stop()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
