"""The real chain: a real Prometheus evaluates alert rules, a real Alertmanager groups them and
posts its webhook to the running bot over loopback; silences go back to that Alertmanager.

Needs the `prometheus` and `prometheus-alertmanager` (or `alertmanager`) binaries on PATH:
skipped with the reason when missing, a failure in CI (`CI=true`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.alertmanager_server import (
    AlertmanagerNotInstalled,
    RunningProcess,
    alertmanager_binary,
    alertmanager_config,
    free_port,
    start_alertmanager,
    start_rule_prometheus,
)
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import block_actions
from storage import alert_groups
from tests.bot_harness import running_bot_harness
from tests.commands.alerts.harness import WEBHOOK_TOKEN, AlertHarness, _catalog_with_runbook
from tests.fixtures.slack import ONCALL

FIRES_FOR = 12.0
"""Seconds the resolving rule fires before its condition turns false."""


def _rules(until: float) -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "checkout-slo",
                "interval": "1s",
                "rules": [
                    {
                        "alert": "CheckoutErrorBudgetBurn",
                        # Fires while the wall clock is before `until`, then resolves.
                        "expr": f"vector(time()) < {until:.0f}",
                        "labels": {"service": "checkout", "severity": "page"},
                        "annotations": {
                            "summary": "checkout burns its error budget 14x",
                            "runbook_url": "https://runbooks.example.com/checkout-burn",
                        },
                    },
                    {
                        "alert": "LedgerLatencyHigh",
                        "expr": "vector(1)",
                        "labels": {"namespace": "ledger", "severity": "ticket"},
                        "annotations": {"summary": "ledger p99 above 300 ms"},
                    },
                ],
            }
        ]
    }


@pytest.fixture
def binaries() -> None:
    try:
        alertmanager_binary()
    except AlertmanagerNotInstalled as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Alertmanager is required in CI: {exc}")
        pytest.skip(str(exc))


@pytest.fixture
def am_port() -> int:
    return free_port()


@pytest.fixture
async def bot(
    binaries: None,
    am_port: int,
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[AlertHarness]:
    settings = bot_settings.model_copy(
        update={
            "alertmanager_token": SecretStr(WEBHOOK_TOKEN),
            "alertmanager_url": f"http://127.0.0.1:{am_port}",
        }
    )
    # The real Alertmanager stamps alerts with the real time: the bot's clock starts there.
    async with running_bot_harness(
        AlertHarness,
        settings,
        _catalog_with_runbook(catalog),
        fake_slack,
        fake_kube,
        kubeconfig,
        start=datetime.now(UTC),
    ) as harness:
        yield harness


@pytest.fixture
def chain(bot: AlertHarness, am_port: int, tmp_path: Path) -> Iterator[RunningProcess]:
    config = alertmanager_config(
        f"{bot.runtime.url}/api/alertmanager",
        WEBHOOK_TOKEN,
        group_by=["alertname"],
        group_wait="1s",
        group_interval="1s",
        repeat_interval="2s",  # resends the same group every few seconds: never a duplicate
    )
    alertmanager = start_alertmanager(config, tmp_path / "alertmanager", port=am_port)
    prometheus = start_rule_prometheus(
        _rules(time.time() + FIRES_FOR), alertmanager.url, tmp_path / "prometheus"
    )
    yield alertmanager
    prometheus.stop()
    alertmanager.stop()


async def test_real_alertmanager_posts_updates_resolves_and_silences(
    bot: AlertHarness, chain: RunningProcess
) -> None:
    assert bot.runtime.db is not None
    db = bot.runtime.db
    burn = await bot.slack.state.until(
        lambda calls: next(
            (
                c
                for c in calls
                if c.method == "chat.postMessage"
                and "CheckoutErrorBudgetBurn" in str(c.args.get("text"))
            ),
            None,
        ),
        timeout=30,
    )
    assert burn.args["channel"] == "C0PAYMENTS"
    blocks = json.dumps(burn.args["blocks"])
    assert "checkout burns its error budget 14x" in blocks
    assert "https://runbooks.example.com/checkout-burn" in blocks
    ledger = await bot.slack.state.until(
        lambda calls: next(
            (
                c
                for c in calls
                if c.method == "chat.postMessage" and "LedgerLatencyHigh" in str(c.args.get("text"))
            ),
            None,
        ),
        timeout=30,
    )
    assert ledger.args["channel"] == "C0PAYMENTS", "routed by its namespace label"

    # Silence the ledger group for 1h from Slack: a real silence, recording who.
    groups = await db.run(lambda s: alert_groups.recent(s, datetime(2000, 1, 1, tzinfo=UTC)))
    ledger_group = next(g for g in groups if "LedgerLatencyHigh" in g.group_key)
    response = await bot.client.send(
        block_actions(
            ONCALL,
            {
                "action_id": "alert_silence_1h",
                "block_id": "alert-actions",
                "value": str(ledger_group.id),
            },
            response_url=bot.slack.new_response_url(),
            message={"ts": ledger_group.message_ts},
        )
    )
    assert response.status == 200
    await bot.idle()
    silences = chain.get("/api/v2/silences")
    active = [s for s in silences if s["status"]["state"] == "active"]
    assert len(active) == 1
    assert active[0]["createdBy"] == "U0ONCALL (forgebot)"
    assert {m["name"]: m["value"] for m in active[0]["matchers"]} == {
        "alertname": "LedgerLatencyHigh",
        "namespace": "ledger",
        "severity": "ticket",
    }

    # The burn alert resolves: the same message says so, in place.
    ts = str(burn.response["ts"])

    def resolved(calls: list[Any]) -> Any:
        message = bot.slack.state.messages.get(("C0PAYMENTS", ts)) or {}
        return "RESOLVED" in json.dumps(message.get("blocks") or []) or None

    await bot.slack.state.until(resolved, timeout=60)
    await bot.idle()
    top = [
        c
        for c in bot.top_level("C0PAYMENTS")
        if "CheckoutErrorBudgetBurn" in str(c.args.get("text"))
    ]
    assert len(top) == 1, "Alertmanager resent the group every 2 s; the bot posted it once"
    replies = bot.replies("C0PAYMENTS", ts)
    assert len(replies) == 1 and "resolved" in json.dumps(replies[0].args)
