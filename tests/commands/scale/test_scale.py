"""`/forge scale SERVICE ENV REPLICAS` through the running bot: rights, freezes and break glass,
autoscalers, the production confirmation, the durable operation, the audit log and `/forge
changes`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from commands.deploy.parse import FreezeRequest
from core.auth import Actor
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import SlackIdentity, block_actions, slash_command
from storage import audit as audit_repo
from storage import operations as operations_repo
from tests.bot_harness import START, BotHarness, running_bot_harness
from tests.fixtures.slack import DEVELOPER, ONCALL, STRANGER

IMAGE = "registry.example.com/payments/checkout:1.4.1"
HPA = next(k for k in KINDS if k.plural == "horizontalpodautoscalers")


class ScaleHarness(BotHarness):
    async def say(self, who: SlackIdentity, text: str) -> dict[str, Any]:
        """What the person sees: the ack if it said something, else the later reply."""
        seen = len(self.slack.state.find("response_url"))
        response = await self.client.send(
            slash_command(who, "/forge", text, self.slack.new_response_url())
        )
        assert response.status == 200
        if response.body and response.json():
            return dict(response.json())
        await self.idle()
        calls = self.slack.state.find("response_url")
        assert calls[seen:], "no answer"
        return dict(calls[-1].args)

    async def press(self, who: SlackIdentity, button: dict[str, Any]) -> dict[str, Any]:
        seen = len(self.slack.state.find("response_url"))
        body = block_actions(
            who,
            {"action_id": button["action_id"], "block_id": "b", "value": button["value"]},
            response_url=self.slack.new_response_url(),
            message={"ts": "1790000000.000100"},
            channel_id=who.channel_id,
        )
        assert (await self.client.send(body)).status == 200
        await self.idle()
        calls = self.slack.state.find("response_url")
        return dict(calls[-1].args) if calls[seen:] else {}

    def replicas(self, namespace: str) -> int:
        found = self.kube.find("deployments", namespace, "checkout")
        assert found is not None
        return int(found["spec"]["replicas"])

    def announced(self) -> list[str]:
        return [
            str(c.args.get("text"))
            for c in self.slack.state.find("chat.postMessage")
            if "scaled" in str(c.args.get("text"))
        ]


@pytest.fixture
async def bot(
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[ScaleHarness]:
    fake_kube.seed_deployment("checkout-staging", "checkout", IMAGE, replicas=3)
    fake_kube.seed_deployment("checkout", "checkout", IMAGE, replicas=3)
    async with running_bot_harness(
        ScaleHarness, bot_settings, catalog, fake_slack, fake_kube, kubeconfig
    ) as harness:
        yield harness


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def test_scale_is_a_durable_audited_change_listed_in_changes(bot: ScaleHarness) -> None:
    assert bot.runtime.db is not None
    reply = await bot.say(DEVELOPER, "scale checkout staging 5")
    assert "Scaling checkout in staging to 5 replicas" in reply["text"], reply
    await bot.idle()
    assert bot.replicas("checkout-staging") == 5
    (said,) = bot.announced()
    assert "<@U0DEVELOPER> scaled *checkout* in *staging* from 3 replicas to 5 replicas" in said
    entries = await bot.runtime.db.run(lambda s: audit_repo.recent(s, command_prefix="scale"))
    assert [(e.command, e.actor_user_id) for e in entries] == [("scale", "U0DEVELOPER")]
    operations = await bot.runtime.db.run(lambda s: operations_repo.failed_since(s, START))
    assert operations == []
    changes = await bot.say(DEVELOPER, "changes checkout 1h")
    assert "checkout scaled in staging: 3 → 5 replicas" in _text(changes)

    again = await bot.say(DEVELOPER, "scale checkout staging 5")
    assert "already runs 5 replicas" in again["text"]


async def test_who_may_scale_and_bad_input(bot: ScaleHarness) -> None:
    refused = await bot.say(STRANGER, "scale checkout staging 5")
    assert refused["text"].startswith(":no_entry:") and "scale" in refused["text"], refused
    for text, expected in (
        ("scale checkout staging", "Name a service, an environment and a replica count"),
        ("scale checkout staging many", "`many` is not a replica count"),
        ("scale checkout staging 1000", "from 0 to 100"),
        ("scale nosuch staging 2", "no service called `nosuch`"),
        ("scale checkout moon 2", "does not run in `moon`"),
        ("scale checkout staging 2 break-glass", "needs a reason"),
    ):
        answer = await bot.say(DEVELOPER, text)
        assert expected in answer["text"], (text, answer)
    assert bot.replicas("checkout-staging") == 3, "nothing half-done"


async def test_production_asks_first_and_the_button_rechecks(bot: ScaleHarness) -> None:
    asked = await bot.say(DEVELOPER, "scale checkout prod 6")
    assert "Scale *checkout* in *prod* from 3 replicas to *6 replicas*?" in _text(asked)
    assert bot.replicas("checkout") == 3, "nothing before the confirmation"
    buttons = {
        e["text"]["text"]: e
        for b in asked["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }
    assert list(buttons) == ["Scale now", "Cancel"]
    await bot.press(STRANGER, buttons["Scale now"])
    assert bot.replicas("checkout") == 3, "rights are checked again at the click"
    cancelled = await bot.press(DEVELOPER, buttons["Cancel"])
    assert "Not scaled" in cancelled["text"] and bot.replicas("checkout") == 3
    await bot.press(DEVELOPER, buttons["Scale now"])
    await bot.press(DEVELOPER, buttons["Scale now"])  # a double click scales once
    assert bot.replicas("checkout") == 6
    assert len(bot.announced()) == 1


async def test_frozen_needs_break_glass_from_on_call(bot: ScaleHarness) -> None:
    assert bot.runtime.ctx is not None
    await bot.runtime.ctx.freezes.freeze(
        Actor("U0ONCALL"), FreezeRequest("staging", timedelta(hours=2), "incident 4411")
    )
    refused = await bot.say(DEVELOPER, "scale checkout staging 5")
    assert "staging is frozen (incident 4411)" in refused["text"]
    assert "break-glass REASON" in refused["text"]
    glass = await bot.say(DEVELOPER, "scale checkout staging 5 break-glass load spike")
    assert glass["text"].startswith(":no_entry:") and "break_glass" in glass["text"]
    assert bot.replicas("checkout-staging") == 3
    await bot.say(ONCALL, "scale checkout staging 5 break-glass load spike")
    await bot.idle()
    assert bot.replicas("checkout-staging") == 5
    assert "Broke glass on a freeze (incident 4411): load spike" in bot.announced()[0]


async def test_an_autoscaler_owns_the_replicas(bot: ScaleHarness) -> None:
    bot.kube.create(
        HPA,
        "checkout-staging",
        {
            "metadata": {"name": "checkout"},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "checkout",
                },
                "minReplicas": 2,
                "maxReplicas": 10,
            },
        },
    )
    refused = await bot.say(DEVELOPER, "scale checkout staging 5")
    assert "HorizontalPodAutoscaler checkout owns the replica count" in refused["text"], refused
    assert bot.replicas("checkout-staging") == 3
