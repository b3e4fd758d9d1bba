"""`/forge changes` through the running bot: the records of every capability on one timeline,
newest first, and "Roll back this" re-checking rights at click time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import SlackIdentity, block_actions, slash_command
from storage import audit
from storage import deployments as deploy_repo
from storage import slo_alerts as slo_repo
from storage.models import DeployKind, DeploymentRecord, DeployOutcome, Freeze
from storage.offhours import OffhoursSleep
from storage.slo_alerts import SloAlertEpisode
from tests.bot_harness import START, BotHarness, running_bot_harness
from tests.fixtures.slack import DEVELOPER, ONCALL, STRANGER

DEPLOYMENTS = next(k for k in KINDS if k.plural == "deployments")
IMAGE = "registry.example.com/payments/checkout"


class ChangesHarness(BotHarness):
    async def ask(self, who: SlackIdentity, text: str) -> dict[str, Any]:
        self.slack.state.reset()
        response = await self.client.send(
            slash_command(who, "/forge", f"changes {text}".strip(), self.slack.new_response_url())
        )
        assert response.status == 200
        if response.body:
            return dict(response.json())
        call = await self.until("response_url")
        return dict(call.args)

    async def press(self, who: SlackIdentity, button: dict[str, Any]) -> dict[str, Any]:
        self.slack.state.reset()
        await self.client.send(
            block_actions(
                who,
                {"action_id": button["action_id"], "block_id": "b", "value": button["value"]},
                response_url=self.slack.new_response_url(),
                message={"ts": "1790000000.000100"},
            )
        )
        call = await self.until("response_url")
        return dict(call.args)


@pytest.fixture
async def bot(
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[ChangesHarness]:
    async with running_bot_harness(
        ChangesHarness, bot_settings, catalog, fake_slack, fake_kube, kubeconfig
    ) as harness:
        yield harness


def _body(blocks: Any) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def _deploy(
    version: str, previous: str, at: timedelta, *, kind: DeployKind = DeployKind.DEPLOY
) -> DeploymentRecord:
    return DeploymentRecord(
        service="checkout",
        team="payments",
        environment="prod",
        kind=kind,
        version=version,
        previous_version=previous,
        actor="U0DEVELOPER",
        started_at=START - at,
        finished_at=START - at + timedelta(minutes=2),
        outcome=DeployOutcome.SUCCEEDED,
    )


async def _seed(bot: ChangesHarness) -> None:
    assert bot.runtime.db is not None
    db = bot.runtime.db

    def rows(s: Any) -> None:
        deploy_repo.record_finished(s, _deploy("1.4.1", "1.4.0", timedelta(hours=30)))
        deploy_repo.record_finished(s, _deploy("1.4.2", "1.4.1", timedelta(hours=3)))
        deploy_repo.record_finished(
            s, _deploy("1.4.1", "1.4.2", timedelta(hours=1), kind=DeployKind.ROLLBACK)
        )
        deploy_repo.add_freeze(
            s,
            Freeze(
                environment="prod",
                reason="incident 4411",
                created_by="U0ONCALL",
                created_at=START - timedelta(minutes=50),
            ),
        )
        s.add(
            OffhoursSleep(
                environment="pv-feature-x",
                team="payments",
                started_at=START - timedelta(hours=12),
                ended_at=START - timedelta(hours=2),
            )
        )
        # Another team's changes never show.
        s.add(
            OffhoursSleep(
                environment="pv-search", team="search", started_at=START - timedelta(hours=5)
            )
        )

    await db.run(rows)
    episode = SloAlertEpisode(
        slo_key="checkout/availability",
        service="checkout",
        environment="prod",
        severity="page",
        condition="burn rate over 14.4x for 1h and 5m",
        started_at=START - timedelta(hours=2, minutes=30),
        channel="C0PAYMENTS",
    )
    await db.run(lambda s: slo_repo.open_episode(s, episode))


async def test_one_timeline_newest_first_within_the_period(bot: ChangesHarness) -> None:
    await _seed(bot)
    answer = await bot.ask(DEVELOPER, "payments 24h")
    assert answer["response_type"] == "ephemeral"
    lines = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section" and "text" in b]
    expected = [
        ":snowflake: prod frozen: incident 4411, by <@U0ONCALL>",
        ":rewind: checkout rolled back in prod: 1.4.2 → 1.4.1, succeeded",
        ":alarm_clock: pv-feature-x woke up after 10h",
        ":fire: SLO checkout/availability burning (page)",
        ":rocket: checkout deployed in prod: 1.4.1 → 1.4.2, succeeded, by <@U0DEVELOPER>",
        ":zzz: pv-feature-x went to sleep (off-hours)",
    ]
    assert len(lines) == len(expected), lines
    for got, want in zip(lines, expected, strict=True):
        assert want in got, (want, got)
    assert "1.4.0" not in _body(answer["blocks"]), "30 hours ago is outside 24h"
    assert "pv-search" not in _body(answer["blocks"])
    # Only a finished deploy carries "Roll back this"; the rollback does not.
    buttons = [b["accessory"] for b in answer["blocks"] if b.get("accessory")]
    assert len(buttons) == 1 and buttons[0]["text"]["text"] == "Roll back this"

    wider = await bot.ask(DEVELOPER, "checkout 2d")
    assert "1.4.0 → 1.4.1" in _body(wider["blocks"])
    assert "pv-search" not in _body(wider["blocks"])


async def test_bad_input_is_a_friendly_ephemeral_error(bot: ChangesHarness) -> None:
    answer = await bot.ask(DEVELOPER, "nosuch")
    assert answer["response_type"] == "ephemeral"
    assert "no service or team called `nosuch`" in answer["text"]
    answer = await bot.ask(DEVELOPER, "checkout 90d")
    assert "31 days at most" in answer["text"]
    answer = await bot.ask(DEVELOPER, "checkout soon")
    assert "`soon` is not a period" in answer["text"]
    empty = await bot.ask(DEVELOPER, "ledger 1h")
    assert "Nothing changed for ledger" in _body(empty["blocks"])


async def test_roll_back_this_prepares_the_rollback_and_rechecks_rights(
    bot: ChangesHarness, fake_kube: FakeKube
) -> None:
    fake_kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    fake_kube.patch(
        DEPLOYMENTS,
        "checkout",
        "checkout",
        "application/strategic-merge-patch+json",
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "image": f"{IMAGE}:1.4.2"}]}}
            }
        },
    )
    assert bot.runtime.db is not None
    await bot.runtime.db.run(
        lambda s: deploy_repo.record_finished(s, _deploy("1.4.2", "1.4.1", timedelta(hours=1)))
    )
    answer = await bot.ask(DEVELOPER, "checkout 6h")
    button = next(b["accessory"] for b in answer["blocks"] if b.get("accessory"))

    refused = await bot.press(STRANGER, button)
    assert refused["text"].startswith(":no_entry:"), refused

    confirm = await bot.press(ONCALL, button)
    body = _body(confirm["blocks"])
    assert "from `1.4.2` to `1.4.1` (revision 1)" in body, body
    await bot.idle()
    entries = await bot.runtime.db.run(lambda s: audit.recent(s, command_prefix="changes.rollback"))
    outcomes = sorted((e.actor_user_id, e.outcome) for e in entries)
    assert outcomes == [("U0ONCALL", "ok"), ("U0STRANGER", "denied")]
