"""`/forge status|pods|events|logs` for a service with 50 pods, end to end.

Starts the fake Kubernetes API (50 pods with logs and Warning events) and the fake Slack Web
API, the bot on SQLite, waits for its start-up warm-up, then sends each signed slash command
repeatedly and times the answer (slash command sent -> answer at the response_url). The target
is under 3 s per answer.

    uv run python bench/diagnostics.py [--repeats 10] [--pods 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.runtime import Runtime  # noqa: E402
from core.catalog import load_catalog  # noqa: E402
from core.config import Settings  # noqa: E402
from integrations.sandbox.kube_api import start_fake_kube  # noqa: E402
from integrations.sandbox.slack_api import FakeUser, start_fake_slack  # noqa: E402
from integrations.sandbox.slack_payloads import (  # noqa: E402
    SignedSlackClient,
    SlackIdentity,
    slash_command,
)

TOKEN = "xoxb-bench-diagnostics"
SECRET = "bench-signing-secret-0123456789"
ONCALL = SlackIdentity(user_id="U0ONCALL", user_name="oncall", channel_id="C0PAYMENTS")
IMAGE = "registry.example.com/payments/checkout"


async def run(repeats: int, pods: int, workdir: Path) -> None:
    kube = start_fake_kube()
    fake = start_fake_slack(TOKEN, users=[FakeUser("U0ONCALL", "oncall", "Omar Oncall")])
    state = kube.state
    state.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.2", replicas=2)
    labels = state.find("deployments", "checkout", "checkout")["spec"]["selector"]["matchLabels"]  # type: ignore[index]
    now = time.time()
    for index in range(pods):
        name = f"checkout-bench-{index:05d}"
        state.seed_pod("checkout", name, labels, restarts=int(index % 7 == 0), ready=index % 9 != 0)
        state.seed_logs(
            "checkout", name, [(now - 60 + i, f"GET /pay 200 request {i}") for i in range(50)]
        )
        if index % 5 == 0:
            state.seed_event("checkout", name, "BackOff", "Back-off restarting failed container")
    kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig", ["dev-cluster", "prod-cluster"])
    settings = Settings(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        FORGEBOT_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        KUBECONFIG=str(kubeconfig),
        _env_file=None,
    )
    runtime = Runtime(settings, load_catalog(ROOT / "catalog.example.yaml"), run_scheduler=False)
    await runtime.start()
    assert runtime.ctx is not None
    started = time.perf_counter()
    await runtime.ctx.kube.warm()
    print(f"start-up warm-up of the Kubernetes client: {time.perf_counter() - started:.1f} s")
    signed = SignedSlackClient(runtime.url, SECRET)
    figures: dict[str, list[float]] = {}
    try:
        for command in ("status", "pods", "events", "logs"):
            for _ in range(repeats):
                url = fake.new_response_url()
                token = url.rsplit("/", 1)[1]
                begin = time.perf_counter()
                response = await signed.send(
                    slash_command(ONCALL, "/forge", f"{command} checkout prod", url)
                )
                assert response.status == 200
                await fake.state.until(
                    lambda calls, t=token: next(  # type: ignore[misc]
                        (c for c in calls if c.method == "response_url" and c.target == t), None
                    ),
                    timeout=30,
                )
                figures.setdefault(command, []).append((time.perf_counter() - begin) * 1000)
    finally:
        await signed.close()
        await runtime.stop()
        fake.stop()
        kube.stop()
    print(f"diagnostics for a service with {pods + 2} pods, {repeats} runs each")
    for command, times in figures.items():
        print(
            f"  /forge {command:<6} answer: median {statistics.median(times):6.0f} ms, "
            f"max {max(times):6.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pods", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.repeats, args.pods, Path(tmp)))


if __name__ == "__main__":
    main()
