"""Cold start and idle memory of `forgebot serve`, and where the first slash command's ack
spends its time.

Starts `forgebot serve` (HTTP mode, SQLite, the example catalog, the fake Slack Web API) as its
own process `--starts` times and prints, for each start and as the median: seconds from process
start to the first `/healthz` 200 (target under 0.5 s) and to the first `/readyz` 200 (target
under 2 s), the CPU the process used until ready, and the idle RSS once the warm-ups after
readiness are done (target under 150 MB). The baseline, measured in the same run, is a bare
slack-bolt app on aiohttp answering `/healthz`: its start is what any bolt app pays.

Then, in this process, it profiles (cProfile) the bot while it answers one signed `/forge help`
after start-up, from the request's arrival to its ack, and prints the largest entries: what is
on the path to the ack.

    uv run python bench/cold_start.py [--starts 5] [--profile 25]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ack_latency import BARE_APP, cpu_seconds, rss_mb  # noqa: E402
from bench.processes import bot_environment, free_port, start_forgebot, wait_healthy  # noqa: E402
from bench.provenance import print_header  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from integrations.sandbox.slack_payloads import SignedSlackClient, SlackIdentity, slash_command  # noqa: E402

SECRET = "bench-signing-secret-0123456789abcdef"
TOKEN = "xoxb-bench-token"
SETTLE_SECONDS = 5.0
"""After readiness the bot warms its clients up; idle memory is read once that is done."""


async def one_start(env: dict[str, str]) -> tuple[float, float, float, float]:
    """(first /healthz, first /readyz, CPU until ready, idle RSS) of one `forgebot serve`."""
    port = free_port()
    forge = start_forgebot(env, port)
    started = time.perf_counter()
    url = f"http://127.0.0.1:{port}"
    try:
        healthz = await wait_healthy(url, started)
        readyz = await wait_healthy(url, started, path="/readyz")
        cpu = cpu_seconds(forge.pid)
        await asyncio.sleep(SETTLE_SECONDS)
        return healthz, readyz, cpu, rss_mb(forge.pid)
    finally:
        forge.terminate()
        forge.wait(20)


async def bare_start() -> float:
    port = free_port()
    started = time.perf_counter()
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(port), SECRET], cwd=ROOT, stderr=subprocess.DEVNULL
    )
    try:
        return await wait_healthy(f"http://127.0.0.1:{port}", started)
    finally:
        bare.terminate()
        bare.wait(20)


async def profile_first_ack(slack_url: str, workdir: Path, top: int) -> None:
    """The bot in this process; cProfile on from sending `/forge help` to its ack."""
    from bot.runtime import Runtime
    from core.catalog import load_catalog
    from core.config import Settings

    settings = Settings(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack_url,
        FORGEBOT_DATABASE_URL=f"sqlite:///{workdir / 'profile.db'}",
        _env_file=None,
    )
    runtime = Runtime(settings, load_catalog(ROOT / "catalog.example.yaml"), run_scheduler=False)
    await runtime.start()
    client = SignedSlackClient(runtime.url, SECRET)
    who = SlackIdentity(user_id="U0DEVELOPER")
    fake = start_fake_slack(TOKEN)
    try:
        profiler = cProfile.Profile()
        profiler.enable()
        response = await client.send(slash_command(who, "/forge", "help", fake.new_response_url()))
        profiler.disable()
        print(
            f"first /forge help after start-up: ack {response.status} in "
            f"{response.elapsed * 1000:.1f} ms (profiled, so slower than unprofiled)"
        )
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(r"(bot|commands|storage|integrations)/", top)
        for line in out.getvalue().splitlines():
            if line.strip():
                print(f"  | {line.rstrip()}")
    finally:
        await client.close()
        await runtime.stop()
        fake.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--profile", type=int, default=25, metavar="N", help="0: no profile")
    args = parser.parse_args()
    print_header("cold_start")
    fake = start_fake_slack(TOKEN)
    workdir = Path(tempfile.mkdtemp(prefix="forgebot-cold-"))
    try:
        env = bot_environment(
            token=TOKEN,
            secret=SECRET,
            slack_api_url=fake.api_url,
            database=workdir / "bench.db",
            catalog=ROOT / "catalog.example.yaml",
        )
        rows = []
        bare = []
        for n in range(args.starts):
            rows.append(await one_start(env))
            bare.append(await bare_start())
            healthz, readyz, cpu, rss = rows[-1]
            print(
                f"start {n + 1}: /healthz {healthz:.2f} s, /readyz {readyz:.2f} s, "
                f"CPU until ready {cpu:.2f} s, idle RSS {rss:.0f} MB; bare bolt app /healthz "
                f"{bare[-1]:.2f} s"
            )
        healthz, readyz, cpu, rss = (
            statistics.median(column) for column in zip(*rows, strict=True)
        )
        base = statistics.median(bare)
        print(
            f"median of {args.starts}: first /healthz 200 after {healthz:.2f} s (target < 0.5 s; "
            f"{healthz / base:.2f}x the bare bolt app's {base:.2f} s), first /readyz 200 after "
            f"{readyz:.2f} s (target < 2 s; {readyz / base:.2f}x), CPU until ready {cpu:.2f} s"
        )
        print(f"idle RSS {rss:.0f} MB, {SETTLE_SECONDS:.0f} s after ready (target < 150 MB)")
        if args.profile:
            await profile_first_ack(fake.api_url, workdir, args.profile)
    finally:
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
