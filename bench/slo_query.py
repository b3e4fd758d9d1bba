"""`/forge slo` for a team of 20 services (60 SLOs), end to end, against a real Prometheus.

Backfills 35 days of synthetic metrics for 20 services with promtool, starts Prometheus on
loopback, starts the bot on SQLite with the fake Slack Web API, then sends the signed slash
command repeatedly and times the ack and the answer (when the response_url receives the report).
Prints the figures and how many queries each report sent.

    uv run python bench/slo_query.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.provenance import print_header  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from core.catalog import Catalog  # noqa: E402
from core.clock import ManualClock  # noqa: E402
from core.config import Settings  # noqa: E402
from integrations.prometheus import PrometheusClient  # noqa: E402
from integrations.sandbox.prometheus_server import start_prometheus  # noqa: E402
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from integrations.sandbox.slack_payloads import (  # noqa: E402
    SignedSlackClient,
    SlackIdentity,
    slash_command,
)
from integrations.sandbox.slo_data import Incident, Story, slo_definitions  # noqa: E402

TOKEN = "xoxb-bench-slo"
SECRET = "bench-signing-secret-0123456789"
USER = SlackIdentity(user_id="U0BENCH", user_name="bench", channel_id="C0BENCH")
SERVICES = 20


def stories() -> list[Story]:
    out = []
    for i in range(SERVICES):
        incidents: tuple[Incident, ...] = ()
        if i % 4 == 1:
            incidents = (
                Incident(timedelta(days=9 + i % 5), timedelta(days=8 + i % 5), 0.02, 0.05),
            )
        elif i % 4 == 2:
            incidents = (Incident(timedelta(hours=2), timedelta(0), 0.03, 0.1),)
        out.append(Story(f"svc-{i:02d}", 300 + 20 * i, 0.0002 * (i % 3), 0.002, incidents))
    return out


def catalog() -> Catalog:
    services: list[dict[str, Any]] = []
    for story in stories():
        availability, latency = slo_definitions(story.service)
        errors, _ = slo_definitions(story.service, bad_ratio=True)
        errors = {**errors, "name": "errors", "objective": 99.5}
        services.append(
            {
                "name": story.service,
                "team": "bench",
                "image": f"registry.example.com/bench/{story.service}",
                "slos": [availability, errors, latency],
            }
        )
    return Catalog.model_validate(
        {
            "platform_team": "bench",
            "teams": [{"name": "bench", "channel": "C0BENCH", "members": ["U0BENCH"]}],
            "environments": [{"name": "prod", "tier": "prod", "cluster": "prod-cluster"}],
            "services": services,
        }
    )


async def measure(url: str, end: datetime, workdir: Path, repeats: int) -> None:
    fake = start_fake_slack(TOKEN)
    at = end + timedelta(seconds=30)
    clock = ManualClock(at)
    settings = Settings(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        FORGEBOT_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        PROMETHEUS_URL=url,
        _env_file=None,
    )
    runtime = Runtime(settings, catalog(), clock=clock, run_scheduler=False)
    await runtime.start()
    assert runtime.ctx is not None
    prometheus = runtime.ctx.prometheus
    assert isinstance(prometheus, PrometheusClient)
    signed = SignedSlackClient(runtime.url, SECRET, wall_clock=lambda: clock.now().timestamp())
    acks, answers, queries = [], [], []
    try:
        for n in range(repeats + 1):
            fake.state.reset()
            sent_before = prometheus.queries_sent
            started = time.perf_counter()
            response = await signed.send(
                slash_command(USER, "/slo", "bench", fake.new_response_url())
            )
            acked = time.perf_counter()
            calls = await fake.state.until(
                lambda calls: [c for c in calls if c.method == "response_url"], timeout=30
            )
            answered = time.perf_counter()
            assert response.status == 200
            text = str(calls[-1].args.get("text", ""))
            assert text.startswith("SLOs for team bench: 60 SLOs"), text
            if n == 0:
                print(f"first report (warm-up): {(answered - started) * 1000:.0f} ms; {text}")
                continue
            acks.append((acked - started) * 1000)
            answers.append((answered - started) * 1000)
            queries.append(prometheus.queries_sent - sent_before)
    finally:
        await signed.close()
        await runtime.stop()
        fake.stop()
    print(f"/forge slo bench: 20 services, 60 SLOs, {repeats} runs")
    print(f"  ack:    median {statistics.median(acks):6.1f} ms, max {max(acks):6.1f} ms")
    print(
        f"  answer: median {statistics.median(answers):6.1f} ms, max {max(answers):6.1f} ms "
        "(slash command sent -> report at the response_url)"
    )
    print(
        f"  Prometheus queries per report: {statistics.median(queries):.0f} "
        f"(instant and range, batched per window in chunks of 20 SLOs), "
        f"at most {prometheus.max_in_flight} in flight"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print_header("slo_query")
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        prometheus = start_prometheus(stories(), end, workdir / "prometheus")
        print(
            f"Prometheus ready with 35 days x 20 services backfilled in "
            f"{time.perf_counter() - started:.1f} s"
        )
        try:
            asyncio.run(measure(prometheus.url, end, workdir, args.repeats))
        finally:
            prometheus.stop()


if __name__ == "__main__":
    main()
