"""`/rollback` end to end: plan, confirm, one rollout followed in one message, recorded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.runtime import Runtime
from commands.deploy.parse import RollbackRequest
from core.auth import Actor
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import SignedSlackClient, block_actions, slash_command
from storage import deployments as repo
from tests.fixtures.slack import DEVELOPER, ONCALL, SIGNING_SECRET, STRANGER

DEPLOYMENTS = next(k for k in KINDS if k.plural == "deployments")
IMAGE = "registry.example.com/payments/checkout"


@pytest.fixture
async def bot(
    bot_settings: Settings, catalog: Catalog, fake_kube: FakeKube, kubeconfig: Path
) -> AsyncIterator[tuple[Runtime, SignedSlackClient]]:
    runtime = Runtime(
        bot_settings.model_copy(update={"kubeconfig": str(kubeconfig)}),
        catalog,
        run_scheduler=False,
    )
    await runtime.start()
    runtime.ctx.rollouts.poll_seconds = 0.05  # type: ignore[union-attr]
    signed = SignedSlackClient(runtime.url, SIGNING_SECRET)
    yield runtime, signed
    await signed.close()
    await runtime.stop()


def _release(fake: FakeKube, version: str) -> None:
    fake.patch(
        DEPLOYMENTS,
        "checkout",
        "checkout",
        "application/strategic-merge-patch+json",
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "image": f"{IMAGE}:{version}"}]}
                }
            }
        },
    )


async def _ask(
    runtime: Runtime, signed: SignedSlackClient, slack: RunningFakeSlack, who: object, text: str
) -> dict[str, object]:
    response = await signed.send(slash_command(who, "/rollback", text, slack.new_response_url()))  # type: ignore[arg-type]
    assert response.status == 200
    if response.body:
        return dict(response.json())
    assert runtime.ctx is not None
    await runtime.ctx.settle()  # the handler answers after its ack: wait for it, not for time
    calls = [c for c in slack.state.calls if c.method == "response_url"]
    assert calls, "no answer"
    return dict(calls[-1].args)


async def test_rollback_is_confirmed_followed_and_recorded(
    bot: tuple[Runtime, SignedSlackClient], fake_kube: FakeKube, fake_slack: RunningFakeSlack
) -> None:
    runtime, signed = bot
    fake_kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    _release(fake_kube, "1.4.2")
    confirm = await _ask(runtime, signed, fake_slack, ONCALL, "checkout prod")
    assert "from `1.4.2` to `1.4.1`" in json.dumps(confirm["blocks"])
    button = next(e for b in confirm["blocks"] if b["type"] == "actions" for e in b["elements"])  # type: ignore[index,union-attr]
    assert fake_kube.find("deployments", "checkout", "checkout")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"].endswith(":1.4.2")  # type: ignore[index]

    press = block_actions(
        ONCALL,
        {
            "action_id": button["action_id"],
            "block_id": "rollback-confirm",
            "value": button["value"],
        },
        response_url=fake_slack.new_response_url(),
        message={"ts": "1790000000.000999"},
        channel_id="C0PAYMENTS",
    )
    fake_slack.state.reset()
    await asyncio.gather(signed.send(press), signed.send(press))  # a double click
    answers = await fake_slack.state.until(
        lambda calls: (
            (hits := [c for c in calls if c.method == "response_url"]) and len(hits) >= 2 and hits
        )
    )
    texts = sorted(str(c.args.get("text")) for c in answers)
    assert texts[0].startswith("Rolling back") or texts[1].startswith("Rolling back")
    assert any("already" in t for t in texts), texts
    assert runtime.ctx is not None
    await runtime.ctx.settle()

    deployment = fake_kube.find("deployments", "checkout", "checkout")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:1.4.1"
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert (
        len([k for k in fake_kube.objects if k[1] == "replicasets" and k[2] == "checkout"]) == 2
    ), "old ReplicaSet reused"
    assert runtime.db is not None
    records = await runtime.db.run(lambda s: repo.history(s, "checkout", "prod"))
    assert [(r.kind, r.version, r.previous_version, r.outcome, r.actor) for r in records] == [
        ("rollback", "1.4.1", "1.4.2", "succeeded", "U0ONCALL")
    ], "one rollback for two clicks"
    final = fake_slack.state.messages_in("C0PAYMENTS")
    assert any("done in" in json.dumps(m) for m in final.values()), (
        "the one progress message ends with the result"
    )


async def test_rollback_refusals(
    bot: tuple[Runtime, SignedSlackClient], fake_kube: FakeKube, fake_slack: RunningFakeSlack
) -> None:
    runtime, signed = bot
    fake_kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.1")
    reply = await _ask(runtime, signed, fake_slack, ONCALL, "checkout prod")
    assert "no previous revision" in str(reply.get("text"))
    fake_slack.state.reset()
    reply = await _ask(runtime, signed, fake_slack, STRANGER, "checkout prod")
    assert "can’t do that" in str(reply.get("text"))
    fake_slack.state.reset()
    reply = await _ask(runtime, signed, fake_slack, DEVELOPER, "checkout prod to seven")
    assert "not a revision number" in str(reply.get("text"))


async def test_rollback_to_a_version_and_to_what_does_not_exist(
    bot: tuple[Runtime, SignedSlackClient], fake_kube: FakeKube, fake_slack: RunningFakeSlack
) -> None:
    runtime, signed = bot
    fake_kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.0")
    _release(fake_kube, "1.4.1")
    _release(fake_kube, "1.4.2")
    confirm = await _ask(runtime, signed, fake_slack, ONCALL, "checkout prod to 1.4.0")
    assert "from `1.4.2` to `1.4.0`" in json.dumps(confirm["blocks"])
    buttons = [e for b in confirm["blocks"] if b["type"] == "actions" for e in b["elements"]]  # type: ignore[index,union-attr]
    cancel = next(b for b in buttons if b["text"]["text"] == "Cancel")
    fake_slack.state.reset()
    press = block_actions(
        ONCALL,
        {
            "action_id": cancel["action_id"],
            "block_id": "rollback-confirm",
            "value": cancel["value"],
        },
        response_url=fake_slack.new_response_url(),
        message={"ts": "1790000000.000998"},
        channel_id="C0PAYMENTS",
    )
    assert (await signed.send(press)).status == 200
    assert runtime.ctx is not None
    await runtime.ctx.settle()
    [kept] = [c.args for c in fake_slack.state.calls if c.method == "response_url"]
    assert kept["text"].startswith("Not rolled back") and kept["replace_original"]
    image = fake_kube.find("deployments", "checkout", "checkout")["spec"]["template"]["spec"]  # type: ignore[index]
    assert image["containers"][0]["image"].endswith(":1.4.2"), "nothing changed"
    fake_slack.state.reset()
    reply = await _ask(runtime, signed, fake_slack, ONCALL, "checkout prod to 1.3.9")
    assert (
        "nor a version checkout ran in prod; known revisions: 3 (1.4.2), 2 (1.4.1), 1 (1.4.0)"
        in str(reply.get("text"))
    )
    fake_slack.state.reset()
    # A service that does not exist is "not found", even for someone who may roll nothing back.
    reply = await _ask(runtime, signed, fake_slack, STRANGER, "nosuch prod")
    assert "nosuch" in str(reply.get("text")) and "can’t do that" not in str(reply.get("text"))


async def test_a_rollback_interrupted_by_a_restart_is_finished_on_start(
    bot: tuple[Runtime, SignedSlackClient], fake_kube: FakeKube, fake_slack: RunningFakeSlack
) -> None:
    runtime, _ = bot
    assert runtime.ctx is not None and runtime.db is not None
    fake_kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.1")
    _release(fake_kube, "1.4.2")
    rollbacks = runtime.ctx.rollbacks

    plan = await rollbacks.plan(Actor("U0ONCALL"), RollbackRequest("checkout", "prod"))
    # Accepted and recorded, then the process died before running it.
    start = runtime.ctx.operations.start
    runtime.ctx.operations.start = lambda operation_id: None  # type: ignore[method-assign,assignment,return-value]
    await rollbacks.start(Actor("U0ONCALL"), plan, "C0PAYMENTS", key="rollback:crash")
    runtime.ctx.operations.start = start  # type: ignore[method-assign]
    assert fake_kube.find("deployments", "checkout", "checkout")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"].endswith(":1.4.2")  # type: ignore[index]

    assert await runtime.ctx.operations.recover() == 1  # what start-up does
    await runtime.ctx.settle()
    deployment = fake_kube.find("deployments", "checkout", "checkout")
    assert deployment is not None and deployment["spec"]["template"]["spec"]["containers"][0][
        "image"
    ].endswith(":1.4.1")
    records = await runtime.db.run(lambda s: repo.history(s, "checkout", "prod"))
    assert [(r.kind, r.outcome) for r in records] == [("rollback", "succeeded")]
    assert any(
        "done in" in json.dumps(m) for m in fake_slack.state.messages_in("C0PAYMENTS").values()
    )
