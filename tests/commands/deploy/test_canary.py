"""Argo Rollouts canaries end to end: signed Slack requests to the real bot, the official
Kubernetes client against the fake API server (whose simulated Rollouts controller walks the
steps), and the one progress message with its Promote / Promote full / Abort / Retry buttons."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import select

from bot.runtime import Runtime
from commands.deploy import canary_views, views
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.gitops_simulator import GitOpsSimulator
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import SlackIdentity, block_actions
from storage import deployments as repo
from storage import incidents as incidents_repo
from storage.incidents import Incident
from storage.models import AuditEntry, Operation
from tests.bot_harness import running_bot_harness
from tests.commands.deploy.test_deploy import ELSEWHERE, DeployHarness
from tests.commands.deploy.test_gitops_deploy import gitops_catalog
from tests.fixtures.git_server import HELM_LAYOUT, KUSTOMIZE_LAYOUT, TOKEN, GitServer
from tests.fixtures.slack import DEVELOPER, ONCALL, STRANGER, button

EXAMPLE = Path(__file__).parents[3] / "catalog.example.yaml"
IMAGE = "registry.example.com/payments/checkout"
NS = "checkout-staging"
ROLLOUTS = next(k for k in KINDS if k.plural == "rollouts")
STEPS = [
    {"setWeight": 20},
    {"pause": {}},
    {"setWeight": 50},
    {"pause": {}},
    {"analysis": {"templates": [{"templateName": "success-rate"}]}},
]


def rollout_catalog() -> Catalog:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    checkout = next(s for s in data["services"] if s["name"] == "checkout")
    checkout["workloads"]["staging"]["kind"] = "Rollout"
    return Catalog.model_validate(data)


class StubBurn:
    """The SLO capability's burn watch as the canary sees it (the real one is evaluated against
    Prometheus in the SLO tests)."""

    def __init__(self) -> None:
        self.burning: str | None = None
        self.asked: list[tuple[str, str]] = []

    async def fast_burn(self, service: str, environment: str) -> str | None:
        self.asked.append((service, environment))
        return self.burning


class CanaryHarness(DeployHarness):
    burn: StubBurn

    def rollout(self) -> dict[str, Any]:
        return self.kube.get(ROLLOUTS, NS, "checkout")

    def message(self) -> dict[str, Any]:
        messages = list(self.slack.state.messages_in(ELSEWHERE.channel_id).values())
        assert len(messages) == 1, "one progress message, updated in place"
        return messages[0]

    async def until_message(self, text: str) -> dict[str, Any]:
        """Wait for the progress message to say `text` (the follow goes on meanwhile)."""

        def found(_: object) -> dict[str, Any] | None:
            for message in self.slack.state.messages_in(ELSEWHERE.channel_id).values():
                if text in json.dumps(message, ensure_ascii=False):
                    return message
            return None

        result: dict[str, Any] = await self.slack.state.until(found, timeout=20)
        return result

    async def press(
        self, who: SlackIdentity, message: dict[str, Any], action_id: str
    ) -> dict[str, Any]:
        """Press a button of the progress message; the ephemeral answer the presser sees."""
        pressed = button(message, action_id)
        url = self.slack.new_response_url()
        response = await self.client.send(
            block_actions(
                who,
                {"action_id": action_id, "block_id": "b", "value": pressed["value"]},
                response_url=url,
                message={"ts": message["ts"]},
                channel_id=ELSEWHERE.channel_id,
            )
        )
        assert response.status == 200
        if response.body and response.json():
            return dict(response.json())
        call = await self.slack.state.until(
            lambda calls: next(
                (
                    c
                    for c in calls
                    if c.method == "response_url" and c.target == url.rsplit("/", 1)[-1]
                ),
                None,
            ),
            timeout=10,
        )
        return dict(call.args)


@pytest.fixture
async def harness(
    bot_settings: Settings,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[CanaryHarness]:
    burn = StubBurn()

    def prepare(runtime: Runtime) -> None:
        assert runtime.ctx is not None
        runtime.ctx.rollouts.poll_seconds = 0.02
        runtime.ctx.burn_watch = burn

    fake_kube.seed_rollout(NS, "checkout", f"{IMAGE}:1.4.1", STEPS, replicas=5)
    fake_kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    async with running_bot_harness(
        CanaryHarness,
        bot_settings,
        rollout_catalog(),
        fake_slack,
        fake_kube,
        kubeconfig,
        prepare=prepare,
    ) as harness:
        harness.burn = burn
        yield harness


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def test_a_canary_is_followed_step_by_step_and_promoted_once_per_press(
    harness: CanaryHarness,
) -> None:
    reply = await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    assert "Deploying checkout `1.4.2` to staging" in reply["text"], reply
    message = await harness.until_message("paused until promoted")
    text = _text(message)
    assert "step 2/5" in text and "setWeight 20%" in text and "actual 20%" in text, text
    assert {
        e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
    } == {
        canary_views.PROMOTE,
        canary_views.PROMOTE_FULL,
        canary_views.ABORT,
    }

    refused = await harness.press(STRANGER, message, canary_views.PROMOTE)
    assert "can’t do that" in refused["text"], refused
    assert harness.rollout()["status"]["currentStepIndex"] == 1, "a refused press changes nothing"

    # A double click: the same value twice at once acts once (the second pause stays).
    first, second = await asyncio.gather(
        harness.press(DEVELOPER, message, canary_views.PROMOTE),
        harness.press(DEVELOPER, message, canary_views.PROMOTE),
    )
    answers = sorted([first["text"], second["text"]])
    assert any("promoted" in a for a in answers) and any("already" in a for a in answers), answers
    message = await harness.until_message("step 4/5")
    assert harness.rollout()["status"]["currentStepIndex"] == 3, "promoted one step, not two"
    assert "setWeight 50%" in _text(message)

    assert (await harness.press(ONCALL, message, canary_views.PROMOTE))["text"].endswith(
        "promoted."
    )
    await harness.finished("staging")
    assert await harness.records("staging") == [
        ("deploy", "1.4.2", "1.4.1", "succeeded", "U0DEVELOPER")
    ]
    rollout = harness.rollout()
    assert rollout["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:1.4.2"
    assert rollout["status"]["phase"] == "Healthy"
    final = _text(harness.message())
    assert "done in" in final and "all 5 steps done" in final and "Successful" in final, final
    assert "canary_promote" not in final, "no buttons once the canary is done"

    assert harness.runtime.db is not None
    operations = await harness.runtime.db.run(
        lambda s: list(s.exec(select(Operation).where(Operation.kind == "canary.action")))
    )
    assert len(operations) == 2, "two presses acted: the double click made one operation"
    audited = await harness.runtime.db.run(
        lambda s: [e.command for e in s.exec(select(AuditEntry))]
    )
    assert audited.count("canary.promote") == 4, audited


async def test_abort_then_retry_then_promote_full(harness: CanaryHarness) -> None:
    await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    message = await harness.until_message("paused until promoted")
    answer = await harness.press(ONCALL, message, canary_views.ABORT)
    assert "aborted" in answer["text"], answer
    await harness.finished("staging")
    message = harness.message()
    text = _text(message)
    assert "RolloutAborted" in text and "failed" in text, text
    assert button(message, views.ROLLBACK_CONFIRM)["text"]["text"] == "Roll back now"
    assert harness.rollout()["status"]["canary"]["weights"]["canary"]["weight"] == 0

    assert "Retrying" in (await harness.press(DEVELOPER, message, canary_views.RETRY))["text"]
    message = await harness.until_message("paused until promoted")
    await harness.press(DEVELOPER, message, canary_views.PROMOTE_FULL)
    await harness.idle()
    assert [r[:4] for r in await harness.records("staging")] == [
        ("deploy", "1.4.2", "1.4.1", "succeeded"),
        ("deploy", "1.4.2", "1.4.1", "failed"),
    ]
    assert "done in" in _text(harness.message())


async def test_a_failed_analysis_aborts_with_its_reason_and_rolls_back(
    harness: CanaryHarness,
) -> None:
    harness.kube.rollouts.failing.add(f"{IMAGE}:1.4.3")
    await harness.deploy(ELSEWHERE, "checkout 1.4.3 to staging")
    message = await harness.until_message("paused until promoted")
    await harness.press(DEVELOPER, message, canary_views.PROMOTE_FULL)
    # Promote full skips the analysis too; deploy a version whose analysis runs and fails.
    await harness.finished("staging")
    harness.kube.rollouts.failing.add(f"{IMAGE}:1.4.4")
    await harness.deploy(ELSEWHERE, "checkout 1.4.4 to staging")
    message = await harness.until_message("paused until promoted")
    await harness.press(DEVELOPER, message, canary_views.PROMOTE)
    message = await harness.until_message("step 4/5")
    await harness.press(DEVELOPER, message, canary_views.PROMOTE)
    await harness.finished("staging", 2)
    records = await harness.records("staging")
    assert records[0][:4] == ("deploy", "1.4.4", "1.4.3", "failed"), records
    text = _text(harness.message())
    assert "assessed Failed" in text and ":x: analysis" in text, text

    message = harness.message()
    harness.slack.state.reset()
    await harness.press_button(ONCALL, button(message, views.ROLLBACK_CONFIRM), ts=message["ts"])
    await harness.idle()
    image = harness.rollout()["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{IMAGE}:1.4.3", "rolled back to the revision that ran before"
    assert (await harness.records("staging"))[0][:4] == ("rollback", "1.4.3", "1.4.4", "succeeded")


async def test_a_fast_burn_pauses_the_canary_instead_of_promoting(
    harness: CanaryHarness,
) -> None:
    harness.kube.rollouts.analysis_seconds = 3600  # the analysis runs until the test says
    await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    message = await harness.until_message("paused until promoted")
    await harness.press(DEVELOPER, message, canary_views.PROMOTE)
    message = await harness.until_message("step 4/5")
    await harness.press(DEVELOPER, message, canary_views.PROMOTE)
    await harness.until_message(":hourglass_flowing_sand: analysis")  # running, not paused
    harness.burn.burning = "checkout/availability: 14.4x over 1h and 5m"
    harness.advance(timedelta(seconds=31))  # the budget is asked every 30 s
    message = await harness.until_message("Paused by forgebot")
    assert "burning fast" in _text(message) and "14.4x" in _text(message)
    rollout = harness.rollout()
    assert rollout["spec"]["paused"] is True
    assert harness.burn.asked and harness.burn.asked[-1] == ("checkout", "staging")

    refused = await harness.press(DEVELOPER, message, canary_views.PROMOTE)
    assert "Not promoted" in refused["text"] and "burning fast" in refused["text"], refused
    assert harness.rollout()["spec"]["paused"] is True

    harness.burn.burning = None
    harness.kube.rollouts.analysis_seconds = 0
    answer = await harness.press(DEVELOPER, message, canary_views.PROMOTE)
    assert answer["text"].endswith("promoted."), answer
    await harness.finished("staging")
    assert (await harness.records("staging"))[0][3] == "succeeded"
    assert "Paused by forgebot" not in _text(harness.message())


async def test_a_press_in_an_incident_channel_lands_in_its_timeline(
    harness: CanaryHarness,
) -> None:
    assert harness.runtime.db is not None
    incident = Incident(
        channel_name="inc-20261124-checkout",
        request_key="test-incident",
        title="checkout errors",
        severity="SEV2",
        channel_id=ELSEWHERE.channel_id,
        opened_by="U0ONCALL",
        opened_at=harness.clock.now(),
        impact_started_at=harness.clock.now(),
    )
    stored, _ = await harness.runtime.db.run(lambda s: incidents_repo.open_incident(s, incident))
    await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    message = await harness.until_message("paused until promoted")
    await harness.press(ONCALL, message, canary_views.ABORT)
    await harness.press(ONCALL, message, canary_views.ABORT)  # a double click: one event
    await harness.finished("staging")
    events = await harness.runtime.db.run(lambda s: incidents_repo.events(s, stored.id or 0))
    lines = [e.text for e in events if "canary" in e.text]
    assert lines == ["aborted the canary of checkout in staging (at step 2)"], lines


# --- GitOps: the commit is the deploy, the canary is followed the same way -----------------------


@pytest.fixture
async def gitops_harness(
    bot_settings: Settings,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
    git_server: GitServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[CanaryHarness]:
    monkeypatch.setenv("FORGEBOT_TEST_GIT_TOKEN", TOKEN)
    git_server.create("payments", KUSTOMIZE_LAYOUT)
    git_server.create("ledger", HELM_LAYOUT)
    data = gitops_catalog(git_server).model_dump(mode="json", exclude_none=True)
    next(s for s in data["services"] if s["name"] == "checkout")["workloads"]["staging"]["kind"] = (
        "Rollout"
    )
    catalog = Catalog.model_validate(data)

    def prepare(runtime: Runtime) -> None:
        assert runtime.ctx is not None and runtime.ctx.gitops is not None
        runtime.ctx.rollouts.poll_seconds = 0.02
        runtime.ctx.gitops.poll_seconds = 0.02

    fake_kube.seed_rollout(NS, "checkout", f"{IMAGE}:1.4.1", STEPS, replicas=5)
    fake_kube.seed_deployment(
        "ledger-staging", "ledger", "registry.example.com/payments/ledger:1.0.0", replicas=2
    )
    simulator = GitOpsSimulator(fake_kube, catalog, TOKEN)
    simulator.install()
    async with running_bot_harness(
        CanaryHarness, bot_settings, catalog, fake_slack, fake_kube, kubeconfig, prepare=prepare
    ) as harness:
        harness.burn = StubBurn()
        simulator.start()
        try:
            yield harness
        finally:
            await simulator.stop()


async def test_a_gitops_deploy_to_a_rollout_commits_then_follows_the_canary(
    gitops_harness: CanaryHarness,
) -> None:
    harness = gitops_harness
    reply = await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    assert "Deploying checkout `1.4.2` to staging" in reply["text"], reply
    message = await harness.until_message("paused until promoted")
    text = _text(message)
    assert "step 2/5" in text, text
    assert harness.rollout()["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        ":1.4.2"
    ), "Argo CD (simulated) applied the commit to the Rollout"
    await harness.press(DEVELOPER, message, canary_views.PROMOTE_FULL)
    await harness.finished("staging")
    assert (await harness.records("staging"))[0][:4] == ("deploy", "1.4.2", "1.4.1", "succeeded")
    assert harness.runtime.db is not None
    record = (await harness.runtime.db.run(lambda s: repo.history(s, "checkout", "staging")))[0]
    assert record.desired_state_commit, "delivered by a commit"


async def test_a_forged_button_value_gets_a_friendly_answer_and_changes_nothing(
    harness: CanaryHarness,
) -> None:
    await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    message = await harness.until_message("paused until promoted")
    forged = json.loads(json.dumps(message))
    for block in forged["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == canary_views.PROMOTE:
                element["value"] = "<!channel>|staging|1|x"
    answer = await harness.press(DEVELOPER, forged, canary_views.PROMOTE)
    assert "not one forgebot drew" in answer["text"] and "<!channel>" not in answer["text"]
    assert harness.rollout()["status"]["currentStepIndex"] == 1
    await harness.press(DEVELOPER, message, canary_views.ABORT)
    await harness.finished("staging")
