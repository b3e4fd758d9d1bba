"""A flood of alerts through a real Alertmanager into the bot: grouped, paced, none lost.

Starts the fake Slack Web API, the bot (SQLite) with its Alertmanager webhook enabled, and a real
Alertmanager (`prometheus-alertmanager` on PATH) whose webhook receiver is the bot. Then posts
1,000 alerts to Alertmanager's API over 60 s, spread across 20 groups (`alertname`) owned by
10 teams (10 channels; `--channels`), Alertmanager delivering each group at most every 10 s
(`--group-interval`), and waits until every group's Slack message lists all its alerts. A
channel takes one send a second: groups x deliveries x 2 (the update and the reply) per
channel above 60 a minute queue, and the latency shows it (try `--channels 4
--group-interval 5s`).

Prints: p50/p99/max from the bot receiving a webhook to its Slack post or reply for it; the
Slack messages posted (top-level = one per group, threaded replies = one per delivery that
changed something, chat.update calls after coalescing); the smallest gap between two sends to
one channel (the pacing: at most one per second); alerts stored vs sent (none lost).

    uv run python bench/alerts.py [--alerts 1000] [--seconds 60] [--groups 20] [--channels 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from sqlmodel import select  # noqa: E402

from bot.runtime import Runtime  # noqa: E402
from core.catalog import Catalog  # noqa: E402
from core.config import Settings  # noqa: E402
from integrations.sandbox.alertmanager_server import (  # noqa: E402
    alertmanager_config,
    start_alertmanager,
)
from integrations.sandbox.slack_api import start_fake_slack  # noqa: E402
from storage.alert_groups import AlertGroup  # noqa: E402
from storage.models import Operation  # noqa: E402

TOKEN = "xoxb-bench-alerts"
SECRET = "bench-signing-secret-0123456789"
WEBHOOK_TOKEN = "bench-alertmanager-token"


def catalog(groups: int, channels: int) -> Catalog:
    teams = [
        {"name": f"team-{t}", "channel": f"C0TEAM{t}", "members": [f"U0MEMBER{t}"]}
        for t in range(channels)
    ]
    services = [
        {
            "name": f"svc-{g:02d}",
            "team": f"team-{g % channels}",
            "image": f"registry.example.com/bench/svc-{g:02d}",
        }
        for g in range(groups)
    ]
    return Catalog.model_validate(
        {
            "platform_team": "team-0",
            "teams": teams,
            "environments": [{"name": "prod", "tier": "prod", "cluster": "prod-cluster"}],
            "services": services,
        }
    )


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


async def run(
    total: int, seconds: float, groups: int, channels: int, interval: str, workdir: Path
) -> None:
    fake = start_fake_slack(TOKEN)
    settings = Settings(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.api_url,
        FORGEBOT_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        _env_file=None,
    ).model_copy(update={"alertmanager_token": SecretStr(WEBHOOK_TOKEN)})
    runtime = Runtime(settings, catalog(groups, channels), run_scheduler=False)
    await runtime.start()
    config = alertmanager_config(
        f"{runtime.url}/api/alertmanager",
        WEBHOOK_TOKEN,
        group_by=["alertname"],
        group_wait="1s",
        group_interval=interval,
        repeat_interval="4h",
    )
    alertmanager = start_alertmanager(config, workdir / "alertmanager")
    assert runtime.ctx is not None and runtime.db is not None
    try:
        started = time.monotonic()
        batch = max(1, total // int(seconds * 4))  # four batches a second
        sent = 0
        while sent < total:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            alerts = []
            for n in range(sent, min(total, sent + batch)):
                group = n % groups
                alerts.append(
                    {
                        "labels": {
                            "alertname": f"BenchAlert{group:02d}",
                            "service": f"svc-{group:02d}",
                            "instance": f"pod-{n:04d}",
                            "severity": "page",
                        },
                        "annotations": {"summary": f"instance pod-{n:04d} is unhappy"},
                        "startsAt": now,
                    }
                )
            await asyncio.to_thread(post_alerts, alertmanager.url, alerts)
            sent += len(alerts)
            target = started + seconds * sent / total
            await asyncio.sleep(max(0.0, target - time.monotonic()))
        sending = time.monotonic() - started
        print(f"posted {sent} alerts to Alertmanager in {sending:.1f} s")

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            count = await runtime.db.run(
                lambda s: sum(len(r.alerts) for r in s.exec(select(AlertGroup)).all())
            )
            if count >= total:
                break
            await asyncio.sleep(0.5)
        await runtime.ctx.operations.wait_idle()
        await runtime.ctx.slack.flush()
        settled = time.monotonic() - started
        rows = await runtime.db.run(lambda s: list(s.exec(select(AlertGroup)).all()))
        operations = await runtime.db.run(
            lambda s: list(
                s.exec(select(Operation).where(Operation.kind == "alerts.deliver")).all()
            )
        )
    finally:
        alertmanager.stop()
        await runtime.stop()
    calls = [c for c in fake.state.calls if c.ok]
    fake.stop()

    latencies = sorted(
        float(o.result["latency"]) * 1000 for o in operations if "latency" in (o.result or {})
    )
    top = [c for c in calls if c.method == "chat.postMessage" and not c.args.get("thread_ts")]
    replies = [c for c in calls if c.method == "chat.postMessage" and c.args.get("thread_ts")]
    updates = [c for c in calls if c.method == "chat.update"]
    by_channel: dict[str, list[float]] = defaultdict(list)
    for call in calls:
        if call.method in ("chat.postMessage", "chat.update"):
            by_channel[str(call.args.get("channel"))].append(call.received_at)
    gaps = [
        later - earlier
        for times in by_channel.values()
        for earlier, later in zip(sorted(times), sorted(times)[1:], strict=False)
    ]
    stored_alerts = sum(len(r.alerts) for r in rows)
    fully_shown = sum(
        1
        for r in rows
        if r.message_ts
        and f"FIRING ({len(r.alerts)})"
        in json.dumps(fake.state.messages.get((r.channel, r.message_ts), {}).get("blocks"))
    )
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    print(
        f"alert flood: {total} alerts over {seconds:.0f} s in {groups} groups, {channels} "
        f"channels, Alertmanager group_interval {interval}"
    )
    print(f"  settled {settled:.1f} s after the first alert")
    print(
        f"  webhook -> Slack: p50 {statistics.median(latencies):.0f} ms, p99 {p99:.0f} ms, "
        f"max {latencies[-1]:.0f} ms over {len(latencies)} deliveries"
    )
    print(
        f"  Slack messages: {len(top)} top-level (groups: {len(rows)}), "
        f"{len(replies)} threaded replies (one per delivery that changed something), "
        f"{len(top) + len(replies)} posted in all; {len(updates)} chat.update (coalesced)"
    )
    print(
        f"  pacing: smallest gap between two sends to one channel {min(gaps):.2f} s "
        f"(limit 1 per second); busiest channel {max(len(t) for t in by_channel.values())} sends"
    )
    print(
        f"  none lost: {stored_alerts}/{total} alerts stored, "
        f"{fully_shown}/{len(rows)} group messages list every alert of their group"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--channels", type=int, default=10, help="teams (one channel each)")
    parser.add_argument("--group-interval", default="10s", help="Alertmanager's group_interval")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(
            run(
                args.alerts,
                args.seconds,
                args.groups,
                args.channels,
                args.group_interval,
                Path(tmp),
            )
        )


if __name__ == "__main__":
    main()
