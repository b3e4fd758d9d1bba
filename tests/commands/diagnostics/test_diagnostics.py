"""`/forge status|pods|events|logs` through the running bot against the fake Kubernetes API:
rights per person, impersonation, no Secret read, token-like values redacted, long logs as a
file in the asker's DM."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from commands.diagnostics.redact import redact
from core.catalog import Catalog, KubernetesIdentity
from core.config import Settings
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import SlackIdentity, slash_command
from storage import deployments as deploy_repo
from storage.models import DeploymentRecord, DeployOutcome
from tests.bot_harness import START, BotHarness, running_bot_harness
from tests.fixtures.slack import DEVELOPER, ONCALL, STRANGER

IMAGE = "registry.example.com/payments/checkout"
PODS = 50


class DiagHarness(BotHarness):
    async def ask(self, who: SlackIdentity, text: str) -> dict[str, Any]:
        url = self.slack.new_response_url()
        response = await self.client.send(slash_command(who, "/forge", text, url))
        assert response.status == 200
        if response.body:
            return dict(response.json())
        token = url.rsplit("/", 1)[1]
        call = await self.slack.state.until(
            lambda calls: next(
                (c for c in calls if c.method == "response_url" and c.target == token), None
            ),
            timeout=10,
        )
        return dict(call.args)


@pytest.fixture
def impersonating(catalog: Catalog) -> Catalog:
    teams = [
        t.model_copy(
            update={
                "kubernetes": KubernetesIdentity(user="payments-oncall", groups=["payments-devs"])
            }
        )
        if t.name == "payments"
        else t
        for t in catalog.teams
    ]
    services = [
        s.model_copy(update={"runbook": "https://runbooks.example.com/checkout"})
        if s.name == "checkout"
        else s
        for s in catalog.services
    ]
    return catalog.model_copy(update={"teams": teams, "services": services})


@pytest.fixture
async def bot(
    bot_settings: Settings,
    impersonating: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[DiagHarness]:
    async with running_bot_harness(
        DiagHarness, bot_settings, impersonating, fake_slack, fake_kube, kubeconfig
    ) as harness:
        # What the bot does at start-up, in the background; the answers are timed after it.
        assert harness.runtime.ctx is not None
        await harness.runtime.ctx.kube.warm()
        yield harness


def _seed(fake: FakeKube, lines_per_pod: int = 3) -> None:
    fake.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.2", replicas=2)
    labels = fake.find("deployments", "checkout", "checkout")["spec"]["selector"]["matchLabels"]  # type: ignore[index]
    now = fake.clock.now().timestamp()
    for index in range(PODS):
        name = f"checkout-7d9f-{index:05d}"
        fake.seed_pod(
            "checkout",
            name,
            labels,
            image=f"{IMAGE}:1.4.2",
            ready=index != 7,
            restarts=4 if index == 7 else 0,
            waiting_reason="CrashLoopBackOff" if index == 7 else "",
            last_terminated_reason="OOMKilled" if index == 7 else "",
        )
        fake.seed_logs(
            "checkout",
            name,
            [(now - 3600, "an old line, outside 15m")]
            + [(now - 60 + i, f"GET /pay 200 request {i}") for i in range(lines_per_pod)],
        )
    fake.seed_logs(
        "checkout",
        "checkout-7d9f-00007",
        [
            (
                now - 30,
                "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig12345678",
            ),
            (now - 20, "connecting with password=hunter2 and key AKIAIOSFODNN7EXAMPLE"),
            (now - 10, "panic: out of memory"),
        ],
    )
    fake.seed_logs(
        "checkout", "checkout-7d9f-00007", [(now - 600, "previous run: OOM")], previous=True
    )
    fake.seed_event(
        "checkout",
        "checkout-7d9f-00007",
        "BackOff",
        "Back-off restarting failed container app",
        count=12,
    )
    fake.seed_event("checkout", "other-service-1", "BackOff", "not ours")


async def test_status_pods_and_events(bot: DiagHarness, fake_kube: FakeKube) -> None:
    _seed(fake_kube)
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
                started_at=START - timedelta(hours=2),
                finished_at=START - timedelta(hours=2),
                outcome=DeployOutcome.SUCCEEDED,
            ),
        )
    )
    fake_kube.requests.clear()
    answer = await bot.ask(ONCALL, "status checkout prod")
    assert answer["response_type"] == "ephemeral"
    body = json.dumps(answer["blocks"], ensure_ascii=False)
    for expected in (
        "`1.4.2`",
        f"{PODS + 1}/{PODS + 2} ready, 1 with restarts or errors",  # + the Deployment's own 2
        "checkout-7d9f-00007",
        "CrashLoopBackOff, last exit: OOMKilled",
        "Back-off restarting failed container app",
        "`1.4.1` → `1.4.2` succeeded by <@U0DEVELOPER>",
        "not frozen",
        "https://runbooks.example.com/checkout",
    ):
        assert expected in body, expected
    assert "not ours" not in body
    paths = [path for _, path, _, _ in fake_kube.requests]
    assert paths and not any("secrets" in p for p in paths)
    impersonated = {
        h.get("Impersonate-User")
        for _, path, h, _ in fake_kube.requests
        if "/namespaces/checkout/" in path
    }
    assert impersonated == {"payments-oncall"}, "read as the owning team"

    pods = await bot.ask(DEVELOPER, "pods checkout prod")
    text = json.dumps(pods["blocks"])
    assert pods["text"] == f"Pods of checkout in prod: {PODS + 2}"
    assert "4 restarts" in text and "CrashLoopBackOff" in text

    events = await bot.ask(ONCALL, "events checkout prod --since 1h")
    assert "BackOff" in json.dumps(events["blocks"]) and "12" in json.dumps(events["blocks"])


async def test_rights_are_checked_per_person_and_bad_input_is_friendly(
    bot: DiagHarness, fake_kube: FakeKube
) -> None:
    _seed(fake_kube)
    fake_kube.requests.clear()
    for command in ("status", "pods", "events", "logs"):
        answer = await bot.ask(STRANGER, f"{command} checkout prod")
        assert answer["text"].startswith(":no_entry:"), answer
    read = [path for _, path, _, _ in fake_kube.requests if "/namespaces/checkout/" in path]
    assert read == [], "nothing is read for someone who may not look"
    answer = await bot.ask(ONCALL, "logs checkout")
    assert "Name a service and an environment" in answer["text"]
    answer = await bot.ask(ONCALL, "logs checkout qa")
    assert "does not run in `qa`" in answer["text"]
    answer = await bot.ask(ONCALL, "logs checkout prod --since forever")
    assert "is not a duration" in answer["text"]
    answer = await bot.ask(ONCALL, "logs checkout prod --follow")
    assert "Unknown flag `--follow`" in answer["text"]


async def test_logs_redacted_inline_or_as_a_file(bot: DiagHarness, fake_kube: FakeKube) -> None:
    _seed(fake_kube)
    short = await bot.ask(ONCALL, "logs checkout prod --pod checkout-7d9f-00007")
    body = short["blocks"][0]["text"]["text"]
    assert "panic: out of memory" in body
    for secret in ("hunter2", "AKIAIOSFODNN7EXAMPLE", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in body
    previous = await bot.ask(ONCALL, "logs checkout prod --pod checkout-7d9f-00007 --previous")
    assert "previous run: OOM" in json.dumps(previous["blocks"])

    everything = await bot.ask(ONCALL, "logs checkout prod --since 15m")
    assert "sent to you as a file in your DM" in everything["text"]
    await bot.idle()
    uploads = [c for c in bot.slack.state.calls if c.method == "files.completeUploadExternal"]
    assert len(uploads) == 1 and uploads[0].args["channel_id"] == "D0ONCALL"
    file_id = uploads[0].response["files"][0]["id"]
    content = (bot.slack.uploaded(file_id) or b"").decode()
    assert content.count("GET /pay 200") == (PODS - 1) * 3  # pod 7 logged other lines
    assert "outside 15m" not in content
    assert "hunter2" not in content and "[redacted]" in content


def test_redaction_of_common_token_shapes() -> None:
    samples = {
        "xoxb-123-456-abcdef": "xoxb-",
        "token=abcd1234efgh": "abcd1234efgh",
        '"client_secret": "s3cr3t-value"': "s3cr3t-value",
        "ghp_" + "a" * 36: "ghp_",
        "sk_live_" + "b" * 24: "sk_live_",
        "postgresql://app:pw@db:5432/x": ":pw@",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----": "MIIE",
        "x" * 10 + "Q9f8" + "z" * 40: "Q9f8",
    }
    for text, leaked in samples.items():
        assert leaked not in redact(text), text
    assert redact("GET /pay 200 in 12ms") == "GET /pay 200 in 12ms"
