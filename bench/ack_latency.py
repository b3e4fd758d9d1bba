"""Ack latency of `forgebot serve` against a bare slack-bolt app, measured in the same run.

Starts `forgebot serve` (HTTP mode, SQLite, the fake Slack Web API) as a separate process and
a bare slack-bolt AsyncApp with a `/ping` handler on aiohttp, also in its own process; sends
the same signed slash commands to both at concurrency 1, 10 and 50; prints p50/p99 ack latency
and throughput with the ratio forgebot/bare, the time from process start to the first
`/healthz` 200, and the idle RSS.

    uv run python bench/ack_latency.py [--requests 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import bot_environment, free_port, start_forgebot, wait_healthy  # noqa: E402
from bench.provenance import print_header  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from integrations.sandbox.slack_payloads import SignedSlackClient, SlackIdentity, slash_command  # noqa: E402

SECRET = "bench-signing-secret-0123456789abcdef"
TOKEN = "xoxb-bench-token"

BARE_APP = textwrap.dedent(
    """
    import sys
    from aiohttp import web
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.authorization import AuthorizeResult

    async def authorize(**_):
        return AuthorizeResult(enterprise_id=None, team_id="T0", bot_token="xoxb-x", bot_user_id="U0", bot_id="B0")

    app = AsyncApp(signing_secret=sys.argv[2], authorize=authorize)

    @app.command("/ping")
    async def ping(ack):
        await ack(text="pong")

    async def events(request):
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    async def healthz(_):
        return web.Response(text="ok")

    web_app = web.Application()
    web_app.router.add_post("/slack/events", events)
    web_app.router.add_get("/healthz", healthz)
    web.run_app(web_app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
    """
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used: on a busy machine a steadier start-up figure
    than wall time, which includes waiting for a core."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(
    url: str, command: str, text: str, total: int, concurrency: int, response_url: str
) -> tuple[list[float], float, int]:
    client = SignedSlackClient(url, SECRET)
    who = SlackIdentity(user_id="U0DEVELOPER")
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker() -> None:
        nonlocal errors
        while not queue.empty():
            queue.get_nowait()
            response = await client.send(slash_command(who, command, text, response_url))
            latencies.append(response.elapsed)
            if response.status != 200:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    await client.close()
    return latencies, elapsed, errors


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=600, help="requests per concurrency level")
    args = parser.parse_args()
    print_header("ack_latency")

    fake = start_fake_slack(TOKEN)
    workdir = Path(tempfile.mkdtemp(prefix="forgebot-bench-"))
    forge_port, bare_port = free_port(), free_port()
    env = bot_environment(
        token=TOKEN,
        secret=SECRET,
        slack_api_url=fake.api_url,
        database=workdir / "bench.db",
        catalog=ROOT / "catalog.example.yaml",
    )
    # The database is migrated before the clock starts, so the start-up figure is the server's.
    forge = start_forgebot(env, forge_port)
    started = time.perf_counter()
    forge_url = f"http://127.0.0.1:{forge_port}"
    ready_seconds = await wait_healthy(forge_url, started)
    # Load starts once the app is attached, as a load balancer would wait for readiness.
    attached_seconds = await wait_healthy(forge_url, started, path="/readyz")
    ready_cpu = cpu_seconds(forge.pid)
    bare_started = time.perf_counter()
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(bare_port), SECRET],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    bare_url = f"http://127.0.0.1:{bare_port}"
    bare_ready = await wait_healthy(bare_url, bare_started)
    await asyncio.sleep(1.0)
    idle_rss = rss_mb(forge.pid)
    response_url = fake.new_response_url()

    print(
        f"forgebot serve: first /healthz 200 after {ready_seconds:.2f} s (bare bolt app: {bare_ready:.2f} s); "
        f"first /readyz 200 after {attached_seconds:.2f} s (targets: 0.5 s and 2 s on a quiet machine)"
    )
    print(f"forgebot serve: CPU used until ready {ready_cpu:.2f} s")
    print(f"forgebot serve: idle RSS {idle_rss:.0f} MB (target < 150 MB)")
    print(
        f"{'concurrency':>11} | {'app':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'req/s':>7} | errors"
    )
    try:
        for concurrency in (1, 10, 50):
            # Warm both up, then measure them alternately so both see the same machine load.
            await drive(forge_url, "/forge", "help", 50, concurrency, response_url)
            await drive(bare_url, "/ping", "", 50, concurrency, response_url)
            forge_lat, forge_s, forge_err = await drive(
                forge_url, "/forge", "help", args.requests, concurrency, response_url
            )
            bare_lat, bare_s, bare_err = await drive(
                bare_url, "/ping", "", args.requests, concurrency, response_url
            )
            for name, lat, secs, err in (
                ("forgebot", forge_lat, forge_s, forge_err),
                ("bare", bare_lat, bare_s, bare_err),
            ):
                print(
                    f"{concurrency:>11} | {name:>8} | {pct(lat, 0.5):7.2f} | {pct(lat, 0.99):7.2f} | {len(lat) / secs:7.0f} | {err}"
                )
            print(
                f"{'':>11} | {'ratio':>8} | {pct(forge_lat, 0.5) / pct(bare_lat, 0.5):7.2f} | "
                f"{pct(forge_lat, 0.99) / pct(bare_lat, 0.99):7.2f} | "
                f"{(len(forge_lat) / forge_s) / (len(bare_lat) / bare_s):7.2f} |"
            )
        print(
            f"forgebot serve: RSS after load {rss_mb(forge.pid):.0f} MB; median p50 "
            f"{statistics.median(forge_lat) * 1000:.2f} ms at concurrency 50"
        )
    finally:
        forge.terminate()
        bare.terminate()
        forge.wait(10)
        bare.wait(10)
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
