"""`POST /api/alertmanager` with v4 payloads: auth, validation, routing by label, one message
per group updated in place, threaded replies for changes, resends never duplicated, buttons."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import SlackIdentity, block_actions
from storage import alert_groups
from storage import deployments as deploy_repo
from storage.models import DeploymentRecord, DeployOutcome
from tests.bot_harness import START, running_bot_harness
from tests.commands.alerts.harness import (
    WEBHOOK_TOKEN,
    AlertHarness,
    _catalog_with_runbook,
    alert,
    payload,
)
from tests.fixtures.slack import ONCALL, STRANGER


@pytest.fixture
async def bot(
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[AlertHarness]:
    settings = bot_settings.model_copy(update={"alertmanager_token": SecretStr(WEBHOOK_TOKEN)})
    async with running_bot_harness(
        AlertHarness, settings, _catalog_with_runbook(catalog), fake_slack, fake_kube, kubeconfig
    ) as harness:
        yield harness


def _body(call: Any) -> str:
    return json.dumps(call.args.get("blocks") or call.args.get("text"), ensure_ascii=False)


async def test_auth_and_validation(bot: AlertHarness) -> None:
    good = payload('{}:{alertname="X"}', "firing", [], {"alertname": "X"})
    status, _ = await bot.webhook(good, token="wrong")
    assert status == 401
    status, answer = await bot.webhook({"version": "3", "groupKey": "k", "status": "firing"})
    assert status == 400 and "version" in answer["error"]
    status, answer = await bot.webhook({**good, "status": "burning"})
    assert status == 400


async def test_one_message_per_group_updated_in_place_with_threaded_changes(
    bot: AlertHarness,
) -> None:
    assert bot.runtime.db is not None
    await bot.runtime.db.run(
        lambda s: deploy_repo.record_finished(
            s,
            DeploymentRecord(
                service="checkout",
                team="payments",
                environment="prod",
                version="1.4.2",
                previous_version="1.4.1",
                actor="U0DEVELOPER",
                started_at=START - timedelta(hours=1),
                finished_at=START - timedelta(minutes=55),
                outcome=DeployOutcome.SUCCEEDED,
            ),
        )
    )
    common = {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"}
    key = '{}:{alertname="HighErrorRate", service="checkout"}'
    a1 = alert(
        "HighErrorRate", "firing", START, fingerprint="a1", labels={"pod": "p1"}, summary="5% 500s"
    )
    a2 = alert(
        "HighErrorRate", "firing", START, fingerprint="a2", labels={"pod": "p2"}, summary="7% 500s"
    )

    status, _ = await bot.webhook(payload(key, "firing", [a1], common))
    assert status == 200
    await bot.idle()
    first = bot.top_level("C0PAYMENTS")
    assert len(first) == 1
    body = _body(first[0])
    for expected in (
        "HighErrorRate · checkout",
        "5% 500s",
        "1.4.1 → 1.4.2",  # what changed
        "https://runbooks.example.com/checkout",
        "Acknowledge",
        "Silence 1h",
        "Roll back last deploy",
        "Open incident",
    ):
        assert expected in body, expected
    ts = str(first[0].response["ts"])

    # Alertmanager resends the same group (and twice at once): nothing new is posted.
    same = payload(key, "firing", [a1], common)
    results = await asyncio.gather(bot.webhook(same), bot.webhook(same))
    assert [r[0] for r in results] == [200, 200]
    await bot.idle()
    assert len(bot.top_level("C0PAYMENTS")) == 1 and bot.replies("C0PAYMENTS", ts) == []

    # A second alert fires, then the first resolves: same message, one reply per change.
    await bot.webhook(payload(key, "firing", [a1, a2], common))
    await bot.idle()
    resolved_a1 = {**a1, "status": "resolved"}
    await bot.webhook(payload(key, "firing", [resolved_a1, a2], common))
    await bot.idle()
    replies = bot.replies("C0PAYMENTS", ts)
    assert ["7% 500s" in _body(r) for r in replies] == [True, False]
    assert "resolved" in _body(replies[1]) and "5% 500s" in _body(replies[1])
    message = bot.slack.state.messages[("C0PAYMENTS", ts)]
    assert "FIRING (1)" in json.dumps(message["blocks"])

    await bot.webhook(payload(key, "resolved", [resolved_a1, {**a2, "status": "resolved"}], common))
    await bot.idle()
    message = bot.slack.state.messages[("C0PAYMENTS", ts)]
    assert "RESOLVED" in json.dumps(message["blocks"])
    assert not any(b["type"] == "actions" for b in message["blocks"])
    assert len(bot.top_level("C0PAYMENTS")) == 1

    # Firing again after it resolved is a new episode: a new message, the old one stays resolved.
    later = {**a1, "startsAt": (START + timedelta(hours=1)).isoformat()}
    await bot.webhook(payload(key, "firing", [later], common))
    await bot.idle()
    top = bot.top_level("C0PAYMENTS")
    assert len(top) == 2 and "FIRING (1)" in _body(top[1])
    assert "RESOLVED" in json.dumps(bot.slack.state.messages[("C0PAYMENTS", ts)]["blocks"])


async def test_routing_by_label(bot: AlertHarness) -> None:
    cases = [
        ({"alertname": "DiskFull", "namespace": "ledger"}, "C0PAYMENTS"),
        ({"alertname": "QueueBacklog", "team": "search"}, "C0SEARCH"),
        ({"alertname": "NodeDown", "instance": "10.0.0.1"}, "C0PLATFORM"),
    ]
    for number, (labels, _) in enumerate(cases):
        key = f'{{}}:{{alertname="{labels["alertname"]}"}}'
        fired = alert(labels["alertname"], "firing", START, fingerprint=f"r{number}", labels=labels)
        status, _ = await bot.webhook(payload(key, "firing", [fired], labels))
        assert status == 200
    await bot.idle()
    for labels, channel in cases:
        assert any(labels["alertname"] in _body(c) for c in bot.top_level(channel)), channel
    assert bot.runtime.db is not None
    ledger = await bot.runtime.db.run(
        lambda s: alert_groups.by_key(s, 'forgebot/{}:{alertname="DiskFull"}')
    )
    assert ledger is not None and (ledger.service, ledger.environment) == ("ledger", "prod")


async def _press(bot: AlertHarness, who: SlackIdentity, action_id: str, value: str) -> None:
    response = await bot.client.send(
        block_actions(
            who,
            {"action_id": action_id, "block_id": "alert-actions", "value": value},
            response_url=bot.slack.new_response_url(),
            message={"ts": "1790000000.000100"},
        )
    )
    assert response.status == 200


async def test_acknowledge_and_open_incident_recheck_rights(bot: AlertHarness) -> None:
    common = {"alertname": "HighLatency", "service": "checkout", "severity": "critical"}
    key = '{}:{alertname="HighLatency"}'
    fired = alert(
        "HighLatency", "firing", START - timedelta(minutes=7), fingerprint="l1", summary="p99 2s"
    )
    await bot.webhook(payload(key, "firing", [fired], common))
    await bot.idle()
    assert bot.runtime.db is not None
    group = await bot.runtime.db.run(lambda s: alert_groups.by_key(s, f"forgebot/{key}"))
    assert group is not None
    await _press(bot, STRANGER, "alert_acknowledge", str(group.id))
    await bot.idle()
    assert not (await bot.runtime.db.run(lambda s: alert_groups.get(s, group.id or 0))).acked_by  # type: ignore[union-attr]
    await _press(bot, ONCALL, "alert_acknowledge", str(group.id))
    await _press(bot, ONCALL, "alert_acknowledge", str(group.id))
    await bot.idle()
    acked = await bot.runtime.db.run(lambda s: alert_groups.get(s, group.id or 0))
    assert acked is not None and acked.acked_by == "U0ONCALL"
    message = bot.slack.state.messages[("C0PAYMENTS", group.message_ts)]
    assert "Acknowledged" in json.dumps(message["blocks"])
    notes = [
        c for c in bot.replies("C0PAYMENTS", group.message_ts) if "Acknowledged by" in _body(c)
    ]
    assert len(notes) == 1

    # Silence without ALERTMANAGER_URL: a friendly error, nothing half done.
    await _press(bot, ONCALL, "alert_silence_1h", str(group.id))
    await bot.idle()
    answers = [c for c in bot.slack.state.calls if c.method == "response_url"]
    assert any("ALERTMANAGER_URL" in str(c.args.get("text")) for c in answers)

    await _press(bot, ONCALL, "alert_open_incident", str(group.id))
    await _press(bot, ONCALL, "alert_open_incident", str(group.id))
    await bot.idle()
    created = [c for c in bot.slack.state.calls if c.method == "conversations.create"]
    assert len(created) == 1
    assert created[0].args["name"] == "inc-20261124-highlatency-on-checkout"
    from storage import incidents

    opened = await bot.runtime.db.run(incidents.open_incidents)
    assert len(opened) == 1 and opened[0].severity == "SEV2"
    assert opened[0].impact_started_at == START - timedelta(minutes=7)
