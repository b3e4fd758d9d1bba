"""`/deploy` end to end: signed Slack requests to the real bot, the official Kubernetes client
against the fake API server, and what Slack would show. Every gate, every refusal and every
fault named in the issue, with the deploy record checked after each."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.runtime import Runtime
from commands.deploy import views
from commands.deploy.parse import DeployRequest, FreezeRequest, Version
from core.auth import Actor
from core.catalog import Catalog
from core.clock import ManualClock
from core.config import Settings
from core.deploy_gate import BudgetVerdict
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import (
    SlackIdentity,
    block_actions,
    slash_command,
    view_submission,
)
from storage import audit
from storage import deployments as repo
from tests.bot_harness import BotHarness, running_bot_harness
from tests.commands.deploy.restart import next_replica, stop_inside_kubernetes_call
from tests.fixtures.slack import DEVELOPER, ONCALL, PLATFORM, STRANGER
from tests.fixtures.slack import button as card_button

IMAGE = "registry.example.com/payments/checkout"
DEPLOYMENTS = next(k for k in KINDS if k.plural == "deployments")
HPAS = next(k for k in KINDS if k.plural == "horizontalpodautoscalers")
ELSEWHERE = dataclasses.replace(DEVELOPER, channel_id="C0RANDOM")


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class DeployHarness(BotHarness):
    async def deploy(self, who: SlackIdentity, text: str, *, reply: bool = True) -> dict[str, Any]:
        """The reply the person sees: the immediate answer, or the first later response
        (`reply=False` where the answer is a dialog instead)."""
        self.slack.state.reset()
        response = await self.client.send(
            slash_command(who, "/deploy", text, self.slack.new_response_url())
        )
        assert response.status == 200
        if response.body and response.json():
            return dict(response.json())
        if not reply:
            return {}
        call = await self.until("response_url")
        return dict(call.args)

    async def press_button(
        self, who: SlackIdentity, button: dict[str, Any], ts: str = "1790000000.000100"
    ) -> None:
        body = block_actions(
            who,
            {"action_id": button["action_id"], "block_id": "b", "value": button["value"]},
            response_url=self.slack.new_response_url(),
            message={"ts": ts},
        )
        response = await self.client.send(body)
        assert response.status == 200

    async def submit_view(
        self, who: SlackIdentity, view: dict[str, Any], values: dict[str, Any]
    ) -> dict[str, Any]:
        response = await self.client.send(view_submission(who, view, values))
        assert response.status == 200
        return response.json() if response.body else {}

    async def latest_view(self, method: str = "views.update") -> dict[str, Any]:
        call = await self.slack.state.until(
            lambda calls: [
                c
                for c in calls
                if c.method == method
                and (c.args.get("view") or {}).get("callback_id") == views.DEPLOY_CONFIRM_VIEW
                and "Checking the gates" not in _text(c.args.get("view"))
            ],
            timeout=10,
        )
        return dict(call[-1].response["view"])

    async def records(self, environment: str) -> list[tuple[str, str, str, str, str]]:
        assert self.runtime.db is not None
        found = await self.runtime.db.run(lambda s: repo.history(s, "checkout", environment))
        return [(r.kind, r.version, r.previous_version, r.outcome, r.actor) for r in found]

    async def finished(self, environment: str, count: int = 1) -> None:
        """Wait for what the requests started, then expect `count` finished rollouts."""
        await self.idle()
        records = await self.records(environment)
        finished = [r for r in records if r[3] != "in_progress"]
        assert len(finished) >= count, (
            f"expected {count} finished rollouts in {environment}: {records}"
        )

    def image(self, namespace: str = "checkout-staging") -> str:
        deployment = self.kube.find("deployments", namespace, "checkout")
        assert deployment is not None
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    def messages(self, channel: str) -> str:
        return _text(self.slack.state.messages_in(channel))


@pytest.fixture
async def harness(
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[DeployHarness]:
    def prepare(runtime: Runtime) -> None:
        assert runtime.ctx is not None
        runtime.ctx.rollouts.poll_seconds = 0.02

    fake_kube.seed_deployment("checkout-staging", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    fake_kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    async with running_bot_harness(
        DeployHarness, bot_settings, catalog, fake_slack, fake_kube, kubeconfig, prepare=prepare
    ) as harness:
        yield harness


class StubBudget:
    """The SLO capability's gate, as the deploy service sees it (its real implementation is
    tested against Prometheus in the SLO tests)."""

    def __init__(self, exhausted: bool) -> None:
        self.exhausted = exhausted
        self.asked: list[tuple[str, str]] = []

    async def check(self, service: str, environment: str) -> BudgetVerdict:
        self.asked.append((service, environment))
        return BudgetVerdict(self.exhausted, "availability 99.71% vs 99.9% objective, -190% budget")


# --- the golden path -----------------------------------------------------------------------------


async def test_a_staging_deploy_is_followed_in_one_message_recorded_and_announced(
    harness: DeployHarness,
) -> None:
    reply = await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    assert "Deploying checkout `1.4.2` to staging" in reply["text"]
    await harness.idle()

    assert harness.image() == f"{IMAGE}:1.4.2"
    assert await harness.records("staging") == [
        ("deploy", "1.4.2", "1.4.1", "succeeded", "U0DEVELOPER")
    ]
    progress = harness.slack.state.messages_in("C0RANDOM")
    assert len(progress) == 1, "one message, updated in place"
    assert "done in" in _text(progress) and "1.4.1` → `1.4.2`" in _text(progress)
    assert "Deployed *checkout* `1.4.2` to *staging*" in harness.messages("C0PAYMENTS"), (
        "announced in the owning team's channel"
    )
    assert harness.runtime.db is not None
    record = (await harness.runtime.db.run(lambda s: repo.history(s, "checkout", "staging")))[0]
    assert record.message_channel == "C0RANDOM" and record.message_ts in progress, (
        "the record links to its Slack message"
    )


async def test_a_failing_image_offers_roll_back_now(harness: DeployHarness) -> None:
    clock, original = ManualClock(datetime.now(UTC)), harness.kube.clock
    harness.kube.clock = clock
    try:
        await harness.deploy(ELSEWHERE, "checkout broken to staging")
        await asyncio.sleep(0)  # let the rollout start before the deadline passes
        await harness.slack.state.until(
            lambda calls: [c for c in calls if c.method == "chat.update"], timeout=10
        )
        clock.advance(timedelta(seconds=601))  # past progressDeadlineSeconds
        await harness.idle()
    finally:
        harness.kube.clock = original
    records = await harness.records("staging")
    assert records[0][:4] == ("deploy", "broken", "1.4.1", "failed")
    message = next(iter(harness.slack.state.messages_in("C0RANDOM").values()))
    text = _text(message)
    assert "ImagePullBackOff" in text, "the pods' reason is shown"
    button = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"])
    assert (
        button["action_id"] == views.ROLLBACK_CONFIRM and button["text"]["text"] == "Roll back now"
    )

    harness.slack.state.reset()
    await harness.press_button(ONCALL, button, ts=str(message["ts"]))
    await harness.idle()
    assert harness.image() == f"{IMAGE}:1.4.1", "rolled back to what ran before"
    assert [r[:4] for r in await harness.records("staging")] == [
        ("rollback", "1.4.1", "broken", "succeeded"),
        ("deploy", "broken", "1.4.1", "failed"),
    ]


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "text", "expected"),
    [
        (DEVELOPER, "nosuch 1.0 to staging", "no service called `nosuch`"),
        (DEVELOPER, "checkout 1.0 to qa", "does not run in `qa`"),
        (
            DEVELOPER,
            "checkout registry.example.com/x:1 to staging",
            "looks like an image reference",
        ),
        (DEVELOPER, "checkout -bad to staging", "not a valid image tag"),
        (DEVELOPER, "checkout sha256:abc to staging", "exactly 64 lowercase hex"),
        (DEVELOPER, "checkout 1.4.2 staging", "like `checkout 1.4.2 to staging`"),
        (STRANGER, "checkout 1.4.2 to staging", "can’t do that"),
        (DEVELOPER, "checkout 1.4.1 to staging", "already runs `1.4.1`"),
        (
            DEVELOPER,
            "checkout latest to staging",
            "`latest` is refused in staging: it is a mutable",
        ),
    ],
)
async def test_bad_input_gets_a_clear_ephemeral_answer(
    harness: DeployHarness, who: SlackIdentity, text: str, expected: str
) -> None:
    reply = await harness.deploy(who, text)
    assert expected in reply["text"], reply
    assert reply.get("response_type", "ephemeral") == "ephemeral"
    assert harness.image() == f"{IMAGE}:1.4.1"
    assert await harness.records("staging") == []


async def test_gitops_owned_workloads_are_refused_and_hpas_are_mentioned(
    harness: DeployHarness,
) -> None:
    harness.kube.patch(
        DEPLOYMENTS,
        "checkout-staging",
        "checkout",
        "application/merge-patch+json",
        {
            "metadata": {
                "annotations": {"argocd.argoproj.io/tracking-id": "checkout:apps/Deployment"}
            }
        },
    )
    reply = await harness.deploy(DEVELOPER, "checkout 1.4.2 to staging")
    assert "Blocked" in _text(reply) and "Argo CD manages this Deployment" in _text(reply)
    assert harness.image() == f"{IMAGE}:1.4.1"

    harness.kube.patch(
        DEPLOYMENTS,
        "checkout-staging",
        "checkout",
        "application/merge-patch+json",
        {"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": None}}},
    )
    harness.kube.create(
        HPAS,
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
    assert harness.runtime.ctx is not None
    plan = await harness.runtime.ctx.deploys.plan(
        Actor("U0DEVELOPER"), DeployRequest("checkout", Version("1.4.2"), "staging")
    )
    assert not plan.blocked
    assert any(g.name == "autoscaling" and "HPA checkout" in g.detail for g in plan.gates)


async def test_two_deploys_at_once_run_one(harness: DeployHarness) -> None:
    harness.kube.rollout_seconds = 5.0  # keep the first one in flight
    try:
        first, second = await asyncio.gather(
            harness.client.send(
                slash_command(
                    DEVELOPER,
                    "/deploy",
                    "checkout 1.4.2 to staging",
                    harness.slack.new_response_url(),
                )
            ),
            harness.client.send(
                slash_command(
                    ONCALL, "/deploy", "checkout 1.4.3 to staging", harness.slack.new_response_url()
                )
            ),
        )
        assert first.status == second.status == 200
        answers = await harness.slack.state.until(
            lambda calls: (
                (hits := [c for c in calls if c.method == "response_url"])
                and len(hits) >= 2
                and hits
            ),
            timeout=10,
        )
    finally:
        harness.kube.rollout_seconds = 0.0
    await harness.idle()
    texts = " | ".join(str(c.args.get("text")) for c in answers)
    assert "in progress" in texts or "still rolling out" in texts, texts
    records = await harness.records("staging")
    assert len(records) == 1 and records[0][3] == "succeeded"


async def test_conflicts_on_patch_are_retried(harness: DeployHarness) -> None:
    harness.kube.faults.conflicts = 2
    harness.kube.faults.match = "PATCH /apis/apps/v1/namespaces/checkout-staging/deployments"
    await harness.deploy(DEVELOPER, "checkout 1.4.2 to staging")
    await harness.idle()
    assert harness.image() == f"{IMAGE}:1.4.2"
    assert (await harness.records("staging"))[0][3] == "succeeded"


async def test_an_unreachable_cluster_mid_rollout_is_followed_to_the_end(
    harness: DeployHarness,
) -> None:
    harness.kube.rollout_seconds = 1.0
    harness.kube.faults.match = "GET /apis/apps/v1/namespaces/checkout-staging/deployments/checkout"
    harness.kube.faults.drops = 0
    try:
        await harness.deploy(DEVELOPER, "checkout 1.4.2 to staging")
        await harness.slack.state.until(
            lambda calls: [c for c in calls if c.method == "chat.update"], timeout=10
        )
        harness.kube.faults.drops = 6  # the connection drops on each of the next six polls
        await harness.idle()
    finally:
        harness.kube.rollout_seconds = 0.0
    assert harness.kube.faults.drops == 0
    assert (await harness.records("staging"))[0][3] == "succeeded"
    assert "done in" in harness.messages("C0PAYMENTS")


async def test_a_deploy_interrupted_by_a_restart_is_finished_on_start(
    harness: DeployHarness,
) -> None:
    ctx = harness.runtime.ctx
    assert ctx is not None
    start = ctx.operations.start
    ctx.operations.start = lambda operation_id: None  # type: ignore[method-assign,assignment,return-value]
    try:
        await ctx.deploys.submit(
            Actor("U0DEVELOPER"),
            DeployRequest("checkout", Version("1.4.2"), "staging"),
            reason="",
            channel="C0PAYMENTS",
            key="deploy:crash",
        )
    finally:
        ctx.operations.start = start  # type: ignore[method-assign]
    assert harness.image() == f"{IMAGE}:1.4.1", "accepted, recorded, not yet run"
    assert await ctx.operations.recover() == 1  # what start-up does
    await harness.idle()
    assert harness.image() == f"{IMAGE}:1.4.2"
    assert (await harness.records("staging"))[0][3] == "succeeded"
    assert "done in" in harness.messages("C0PAYMENTS")


# --- freezes, budgets, prod ----------------------------------------------------------------------


async def test_a_service_freeze_stops_that_service_only(harness: DeployHarness) -> None:
    """What "Freeze deploys" on a burn alert sets: the gate refuses the frozen service and
    lets the others through."""
    ctx = harness.runtime.ctx
    assert ctx is not None
    freezes = ctx.freezes
    harness.kube.seed_deployment(
        "ledger-staging", "ledger", "registry.example.com/payments/ledger:1.0.0", replicas=1
    )
    await freezes.freeze(
        Actor("U0ONCALL"),
        FreezeRequest(
            "staging", timedelta(hours=4), "error budget burn on checkout/availability", "checkout"
        ),
    )
    reply = await harness.deploy(DEVELOPER, "ledger 2.0.0 to staging")
    assert "Deploying ledger `2.0.0` to staging" in reply["text"], reply
    await harness.idle()
    reply = await harness.deploy(DEVELOPER, "checkout 1.4.2 to staging")
    text = _text(reply)
    assert "checkout in staging is frozen (error budget burn on checkout/availability)" in text
    assert harness.image() == f"{IMAGE}:1.4.1"


async def test_break_glass_in_a_freeze_needs_a_reason_and_a_second_approver(
    harness: DeployHarness,
) -> None:
    await harness.client.send(
        slash_command(
            ONCALL,
            "/forge",
            "freeze staging for 2h incident 4411",
            harness.slack.new_response_url(),
        )
    )
    await harness.idle()
    reply = await harness.deploy(DEVELOPER, "checkout 1.4.2 to staging")
    text = _text(reply)
    assert "staging is frozen (incident 4411)" in text
    button = next(e for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"])
    assert button["text"]["text"] == "Break glass…"

    harness.slack.state.reset()
    await harness.press_button(DEVELOPER, button)
    view = await harness.latest_view()
    reason_block = next(b for b in view["blocks"] if b.get("block_id") == views.REASON)
    assert reason_block["type"] == "input"
    empty = await harness.submit_view(
        DEVELOPER, view, {views.REASON: {"value": {"type": "plain_text_input", "value": "  "}}}
    )
    assert empty == {
        "response_action": "errors",
        "errors": {views.REASON: "Give a reason: it is kept in the audit log."},
    }, "an empty reason is a field error while the dialog is open"
    await harness.submit_view(
        DEVELOPER,
        view,
        {views.REASON: {"value": {"type": "plain_text_input", "value": "payments are failing"}}},
    )
    card = await harness.until("chat.postMessage", channel="C0PAYMENTS")
    assert "payments are failing" in _text(card.args)
    assert harness.image() == f"{IMAGE}:1.4.1", "nothing happens before the approval"
    approve = card_button(card.args, views.DEPLOY_APPROVE)

    harness.slack.state.reset()
    await harness.press_button(DEVELOPER, approve)  # the requester
    refused = await harness.until("response_url")
    assert "can’t approve your own" in refused.args["text"]
    await harness.press_button(dataclasses.replace(DEVELOPER, user_id="U0SEARCHDEV"), approve)
    refused = await harness.slack.state.until(
        lambda calls: [
            c
            for c in calls
            if c.method == "response_url" and "break_glass" in str(c.args.get("text"))
        ],
        timeout=10,
    )
    await asyncio.gather(
        harness.press_button(ONCALL, approve), harness.press_button(PLATFORM, approve)
    )
    await harness.finished("staging")
    assert harness.image() == f"{IMAGE}:1.4.2"
    assert [r[:4] for r in await harness.records("staging")] == [
        ("deploy", "1.4.2", "1.4.1", "succeeded")
    ], "two approvers pressing at once deploy once"
    assert harness.runtime.db is not None
    entries = await harness.runtime.db.run(lambda s: audit.recent(s, limit=200))
    glass = [e for e in entries if e.command == "deploy.break_glass"]
    assert glass and glass[0].arguments["reason"] == "payments are failing"


async def test_prod_confirms_in_a_dialog_and_needs_a_second_person(harness: DeployHarness) -> None:
    await harness.deploy(DEVELOPER, "checkout 1.4.2 to prod", reply=False)
    opened = await harness.until("views.open")
    assert "Checking the gates" in _text(opened.args["view"]), "opened at once, then filled"
    view = await harness.latest_view()
    assert view["callback_id"] == views.DEPLOY_CONFIRM_VIEW
    assert "two-person rule" in _text(view) and view["submit"]["text"] == "Ask for approval"

    await harness.submit_view(DEVELOPER, view, {})
    card = await harness.until("chat.postMessage", channel="C0PAYMENTS")
    approve = card_button(card.args, views.DEPLOY_APPROVE)
    deny = card_button(card.args, views.DEPLOY_DENY)
    await harness.press_button(ONCALL, approve)
    await harness.finished("prod")
    assert harness.image("checkout") == f"{IMAGE}:1.4.2"
    assert await harness.records("prod") == [
        ("deploy", "1.4.2", "1.4.1", "succeeded", "U0DEVELOPER")
    ]
    harness.slack.state.reset()
    await harness.press_button(PLATFORM, deny)
    late = await harness.until("response_url")
    assert "already approved" in late.args["text"]


async def test_an_exhausted_error_budget_blocks_prod_unless_hotfix_or_overridden(
    harness: DeployHarness,
) -> None:
    ctx = harness.runtime.ctx
    assert ctx is not None
    ctx.budget_gate = StubBudget(exhausted=True)
    deploys = ctx.deploys
    plan = await deploys.plan(
        Actor("U0DEVELOPER"), DeployRequest("checkout", Version("1.4.2"), "prod")
    )
    assert [g.name for g in plan.blocked] == ["error budget"]
    assert "99.71%" in plan.blocked[0].detail and "hotfix" in plan.blocked[0].detail

    hotfix = await deploys.plan(
        Actor("U0DEVELOPER"), DeployRequest("checkout", Version("1.4.2"), "prod", hotfix=True)
    )
    assert not hotfix.blocked

    oncall = await deploys.plan(
        Actor("U0ONCALL"), DeployRequest("checkout", Version("1.4.2"), "prod")
    )
    assert not oncall.blocked and oncall.needs_reason
    with pytest.raises(Exception, match="Give a reason"):
        await deploys.submit(
            Actor("U0ONCALL"),
            DeployRequest("checkout", Version("1.4.2"), "prod"),
            reason="  ",
            channel="C0PAYMENTS",
            key="k1",
        )
    started = await deploys.submit(
        Actor("U0ONCALL"),
        DeployRequest("checkout", Version("1.4.2"), "prod"),
        reason="fix for the burn",
        channel="C0PAYMENTS",
        key="k2",
    )
    assert started.kind == "awaiting_approval", "prod's two-person rule still applies"
    entries = await harness.runtime.db.run(lambda s: audit.recent(s, limit=50))  # type: ignore[union-attr]
    assert any(e.command == "deploy.override_budget_gate" for e in entries)

    ctx.budget_gate = StubBudget(exhausted=False)
    fine = await deploys.plan(
        Actor("U0DEVELOPER"), DeployRequest("checkout", Version("1.4.2"), "prod")
    )
    assert not fine.blocked


async def test_the_deploy_form_suggests_versions_and_reviews(harness: DeployHarness) -> None:
    harness.slack.state.reset()
    await harness.client.send(
        slash_command(DEVELOPER, "/deploy", "", harness.slack.new_response_url())
    )
    opened = await harness.until("views.open")
    view = dict(opened.response["view"])
    assert view["callback_id"] == views.DEPLOY_FORM_VIEW

    # Choosing the service narrows the environments and offers recent versions.
    chosen = {"type": "static_select", "selected_option": {"value": "checkout"}}
    view["state"] = {"values": {views.FORM_SERVICE: {"value": chosen}}}
    await harness.client.send(
        block_actions(
            DEVELOPER,
            {
                "action_id": "value",
                "block_id": views.FORM_SERVICE,
                "type": "static_select",
                "selected_option": {"value": "checkout"},
            },
            response_url="",
            view=view,
        )
    )
    updated = await harness.until("views.update")
    assert "Recently running: 1.4.1" in _text(updated.args["view"])

    errors = await harness.submit_view(
        DEVELOPER,
        view,
        {
            views.FORM_SERVICE: {"value": chosen},
            views.FORM_ENVIRONMENT: {
                "value": {"type": "static_select", "selected_option": {"value": "staging"}}
            },
            views.FORM_VERSION: {"value": {"type": "plain_text_input", "value": "not a tag!"}},
        },
    )
    assert errors["response_action"] == "errors" and views.FORM_VERSION in errors["errors"]

    answer = await harness.submit_view(
        DEVELOPER,
        view,
        {
            views.FORM_SERVICE: {"value": chosen},
            views.FORM_ENVIRONMENT: {
                "value": {"type": "static_select", "selected_option": {"value": "staging"}}
            },
            views.FORM_VERSION: {"value": {"type": "plain_text_input", "value": "1.4.2"}},
        },
    )
    assert answer["response_action"] == "update"
    review = await harness.latest_view()
    assert (
        review["callback_id"] == views.DEPLOY_CONFIRM_VIEW and review["submit"]["text"] == "Deploy"
    )
    await harness.submit_view(DEVELOPER, review, {})
    await harness.idle()
    assert harness.image() == f"{IMAGE}:1.4.2"


async def test_a_retried_slash_command_is_recognised_before_the_gates(
    harness: DeployHarness,
) -> None:
    """Slack retries a request it thinks was lost: the retry must not be answered with "a
    rollout is already in progress" (its own), nor deploy twice."""
    harness.slack.state.reset()
    body = slash_command(
        ELSEWHERE, "/deploy", "checkout 1.4.2 to staging", harness.slack.new_response_url()
    )
    first, retry = await asyncio.gather(harness.client.send(body), harness.client.send(body))
    assert first.status == retry.status == 200
    await harness.until("response_url")
    await harness.slack.state.until(
        lambda calls: [c for c in calls if c.method == "chat.postMessage"], timeout=10
    )
    await harness.idle()
    answers = [c.args.get("text", "") for c in harness.slack.state.find("response_url")]
    assert len(answers) == 1 and "Deploying checkout `1.4.2` to staging" in answers[0], answers
    assert not any("already in progress" in a for a in answers)
    assert await harness.records("staging") == [
        ("deploy", "1.4.2", "1.4.1", "succeeded", "U0DEVELOPER")
    ]


async def test_an_acked_deploy_interrupted_before_its_gates_is_done_and_told_after_restart(
    harness: DeployHarness,
) -> None:
    """The request row is written before the gates run: a crash right after it loses nothing,
    recovery runs the request and the person is told what happened."""
    from commands.deploy.handlers import REQUEST, AcceptedDeploy

    ctx = harness.runtime.ctx
    assert ctx is not None
    request = DeployRequest("checkout", Version("1.4.2"), "staging")
    payload = AcceptedDeploy(
        actor="U0DEVELOPER",
        service=request.service,
        version=request.version.text,
        environment=request.environment,
        channel="C0RANDOM",
        key="deploy:T0CRASH",
    ).model_dump()
    # What `accept` writes first; then the process died.
    await ctx.operations.submit(
        REQUEST,
        payload,
        idempotency_key=f"{REQUEST}:deploy:T0CRASH",
        actor_user_id="U0DEVELOPER",
        start=False,
    )
    harness.slack.state.reset()
    assert await ctx.operations.recover() == 1  # what the next start-up (or replica) does
    await harness.idle()
    assert harness.image() == f"{IMAGE}:1.4.2"
    told = [c for c in harness.slack.state.calls if c.method == "chat.postEphemeral"]
    assert told and "restarted while handling your deploy" in told[0].args["text"]
    assert "Deploying checkout `1.4.2` to staging" in told[0].args["text"]


async def test_denying_a_prod_deploy_asks_why_and_tells_the_requester(
    harness: DeployHarness,
) -> None:
    await harness.deploy(DEVELOPER, "checkout 1.4.2 to prod", reply=False)
    view = await harness.latest_view()
    await harness.submit_view(DEVELOPER, view, {})
    card = await harness.until("chat.postMessage", channel="C0PAYMENTS")
    deny = card_button(card.args, views.DEPLOY_DENY)
    harness.slack.state.reset()
    await harness.press_button(ONCALL, deny)
    await harness.idle()
    dialog = harness.slack.state.find("views.open")[-1].response["view"]
    assert dialog["callback_id"] == views.DEPLOY_DENY_VIEW
    empty = await harness.submit_view(ONCALL, dialog, {})
    assert empty["response_action"] == "errors" and views.REASON in empty["errors"]
    await harness.submit_view(
        ONCALL,
        dialog,
        {views.REASON: {"value": {"type": "plain_text_input", "value": "wait for the freeze"}}},
    )
    await harness.idle()
    assert "wait for the freeze" in json.dumps([c.args for c in harness.slack.state.calls])
    assert harness.image("checkout") == f"{IMAGE}:1.4.1", "denied: nothing deployed"


# --- one plan, one read ------------------------------------------------------------------------


async def test_a_deploy_plans_once_with_one_kubernetes_read(harness: DeployHarness) -> None:
    """Counted at the fake API server: the plan reads the Deployment (with its namespace's
    autoscalers) once; the only other read before the patch is the patch's own
    optimistic-concurrency read. (Before the flat path: three reads, two HPA lists.)"""
    harness.kube.requests.clear()
    reply = await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    assert "Deploying checkout `1.4.2` to staging" in reply["text"]
    await harness.idle()
    assert harness.image() == f"{IMAGE}:1.4.2"
    # The workload's namespace only: the client's start-up warm-up (discovery) may run now.
    calls = [
        (method, path)
        for method, path, _, _ in harness.kube.requests
        if "/namespaces/checkout-staging/" in path
    ]
    deployment = "/apis/apps/v1/namespaces/checkout-staging/deployments/checkout"
    patched = calls.index(("PATCH", deployment))
    before = calls[:patched]
    autoscalers = [c for c in before if c[1].endswith("/horizontalpodautoscalers")]
    reads = [c for c in before if c == ("GET", deployment)]
    assert len(autoscalers) == 1, f"the plan reads the cluster once: {before}"
    assert len(reads) == 2, f"one read for the plan, one by the patch itself: {before}"
    assert [c for c in before if c not in autoscalers + reads] == [], before


# --- hotfix ------------------------------------------------------------------------------------


async def test_a_hotfix_to_prod_asks_why_and_audits_it(harness: DeployHarness) -> None:
    """`hotfix` skips the error-budget gate: the dialog asks why (a field error when empty)
    and the reason goes to the audit log and the approver's card."""
    await harness.deploy(DEVELOPER, "checkout 1.4.2 to prod hotfix", reply=False)
    view = await harness.latest_view()
    reason_block = next(b for b in view["blocks"] if b.get("block_id") == views.REASON)
    assert reason_block["label"]["text"] == "Why a hotfix?"
    assert "hotfix: not gated" in _text(view)
    empty = await harness.submit_view(
        DEVELOPER, view, {views.REASON: {"value": {"type": "plain_text_input", "value": " "}}}
    )
    assert empty == {
        "response_action": "errors",
        "errors": {views.REASON: "Give a reason: it is kept in the audit log."},
    }
    await harness.submit_view(
        DEVELOPER,
        view,
        {views.REASON: {"value": {"type": "plain_text_input", "value": "card payments <!here>"}}},
    )
    card = await harness.until("chat.postMessage", channel="C0PAYMENTS")
    assert "card payments &lt;!here&gt;" in _text(card.args), "shown to the approver, escaped"
    assert harness.runtime.db is not None
    entries = await harness.runtime.db.run(lambda s: audit.recent(s, limit=200))
    hotfixes = [e for e in entries if e.command == "deploy.hotfix"]
    assert len(hotfixes) == 1 and hotfixes[0].arguments == {
        "service": "checkout",
        "environment": "prod",
        "version": "1.4.2",
        "reason": "card payments <!here>",
    }
    assert harness.image("checkout") == f"{IMAGE}:1.4.1", "prod still waits for a second person"


# --- durable clicks ----------------------------------------------------------------------------


async def test_an_approval_cut_short_by_a_restart_is_finished_and_told(
    harness: DeployHarness,
) -> None:
    """Approve is durable right after its ack: stopped while the approved deploy is being
    planned, the next replica finishes it (one deploy) and tells the approver."""
    await harness.deploy(DEVELOPER, "checkout 1.4.2 to prod", reply=False)
    await harness.submit_view(DEVELOPER, await harness.latest_view(), {})
    card = await harness.until("chat.postMessage", channel="C0PAYMENTS")
    approve = card_button(card.args, views.DEPLOY_APPROVE)
    harness.kube.faults.latency = 1.0
    await harness.press_button(ONCALL, approve)
    await stop_inside_kubernetes_call(harness.runtime, harness.kube)
    assert harness.image("checkout") == f"{IMAGE}:1.4.1", "cut short before the deploy"

    harness.slack.state.reset()
    harness.advance(timedelta(seconds=1))  # the next pod starts a moment later
    async with next_replica(harness.runtime) as replica:
        assert replica.ctx is not None and replica.db is not None
        await replica.ctx.settle()
        assert harness.image("checkout") == f"{IMAGE}:1.4.2"
        records = await replica.db.run(lambda s: repo.history(s, "checkout", "prod"))
        assert [(r.kind, r.outcome, r.actor) for r in records] == [
            ("deploy", "succeeded", "U0DEVELOPER")
        ]
        told = [
            c.args
            for c in harness.slack.state.calls
            if c.method == "chat.postEphemeral" and c.args.get("user") == "U0ONCALL"
        ]
        assert len(told) == 1, told
        assert "restarted while handling your approval" in told[0]["text"]
        assert (
            "approved" in told[0]["text"]
            and "Deploying checkout `1.4.2` to prod" in (told[0]["text"])
        )


async def test_a_retried_approval_is_recognised_before_it_is_checked(
    harness: DeployHarness,
) -> None:
    """A double click on Approve: the second press finds the first one's row and is not
    answered ("already approved by you" would be the first one's own state)."""
    await harness.deploy(DEVELOPER, "checkout 1.4.2 to prod", reply=False)
    await harness.submit_view(DEVELOPER, await harness.latest_view(), {})
    card = await harness.until("chat.postMessage", channel="C0PAYMENTS")
    approve = card_button(card.args, views.DEPLOY_APPROVE)
    harness.slack.state.reset()
    await asyncio.gather(
        harness.press_button(ONCALL, approve), harness.press_button(ONCALL, approve)
    )
    await harness.finished("prod")
    answers = [c.args.get("text", "") for c in harness.slack.state.find("response_url")]
    assert not any("already" in a for a in answers), answers
    assert [r[:4] for r in await harness.records("prod")] == [
        ("deploy", "1.4.2", "1.4.1", "succeeded")
    ]


async def test_a_deny_submitted_twice_is_decided_once_and_answered_once(
    harness: DeployHarness,
) -> None:
    """The deny dialog submitted twice (a retry): the second finds the first one's row before
    anything is checked, so nobody is told "already denied" by their own first submission."""
    await harness.deploy(DEVELOPER, "checkout 1.4.2 to prod", reply=False)
    await harness.submit_view(DEVELOPER, await harness.latest_view(), {})
    card = await harness.until("chat.postMessage", channel="C0PAYMENTS")
    deny = card_button(card.args, views.DEPLOY_DENY)
    await harness.press_button(ONCALL, deny)
    await harness.idle()
    dialog = harness.slack.state.find("views.open")[-1].response["view"]
    harness.slack.state.reset()
    why = {views.REASON: {"value": {"type": "plain_text_input", "value": "after the freeze"}}}
    await asyncio.gather(
        harness.submit_view(ONCALL, dialog, why), harness.submit_view(ONCALL, dialog, why)
    )
    await harness.idle()
    said = _text([c.args for c in harness.slack.state.calls])
    assert "already" not in said, said
    assert said.count("after the freeze") >= 1
    assert harness.runtime.db is not None
    from storage import deploy_approvals

    approval_id = int(deny["value"])
    approval = await harness.runtime.db.run(lambda s: deploy_approvals.get(s, approval_id))
    assert approval is not None and approval.state == "denied"
    assert approval.decided_by == "U0ONCALL" and approval.decision_note == "after the freeze"


async def test_a_deploy_crashed_by_an_unforeseen_answer_is_failed_and_told_once(
    harness: DeployHarness,
) -> None:
    """The image patch answered with a proxy's HTML page (200, not JSON): the operation
    crashes; it is failed (not left running), the record is not left in progress, and the
    person who deployed is told once, with a reference and no internals."""
    harness.kube.faults.match = "PATCH /apis/apps/v1/namespaces/checkout-staging/deployments"
    harness.kube.faults.garbled = 1
    await harness.deploy(DEVELOPER, "checkout 1.4.2 to staging")
    await harness.idle()
    assert harness.kube.faults.garbled == 0, "the fault was met"
    records = await harness.records("staging")
    assert len(records) == 1 and records[0][3] != "in_progress", records
    told = [
        c
        for c in harness.slack.state.find()
        if "internal error" in str(c.args.get("text", "")) + _text(c.args.get("blocks", []))
    ]
    assert len(told) == 1, told
    text = str(told[0].args.get("text", "")) + _text(told[0].args.get("blocks", []))
    assert "reference" in text and "an internal error stopped it" in text
    assert "Traceback" not in text and "<html>" not in text
