"""`/deploy` the GitOps way, end to end: signed Slack requests to the real bot, commits pushed with
dulwich to a real Git server (`git http-backend`), the Argo CD / Flux simulator applying them to
the fake Kubernetes API, and the one progress message Slack would show."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.runtime import Runtime
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.gitops_simulator import GitOpsSimulator
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import slash_command
from storage import deployments as repo
from tests.bot_harness import running_bot_harness
from tests.commands.deploy.test_deploy import ELSEWHERE, DeployHarness
from tests.fixtures.git_server import HELM_LAYOUT, KUSTOMIZE_LAYOUT, TOKEN, GitServer, git
from tests.fixtures.slack import DEVELOPER, ONCALL

EXAMPLE = Path(__file__).parents[3] / "catalog.example.yaml"
CHECKOUT_FILE = "apps/checkout/overlays/staging/kustomization.yaml"
LEDGER_FILE = "envs/staging/ledger-values.yaml"
IMAGE = "registry.example.com/payments/checkout"


def gitops_catalog(server: GitServer) -> Catalog:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    services = {s["name"]: s for s in data["services"]}
    services["checkout"]["workloads"]["staging"].update(
        delivery="gitops",
        gitops={
            "repository": server.repo_url("payments"),
            "credentials": "env:FORGEBOT_TEST_GIT_TOKEN",
            "file": CHECKOUT_FILE,
            "kustomize_image": IMAGE,
            "controller": {"kind": "argocd", "name": "checkout-staging"},
        },
    )
    services["ledger"]["workloads"]["staging"].update(
        delivery="gitops",
        gitops={
            "repository": server.repo_url("ledger"),
            "credentials": "env:FORGEBOT_TEST_GIT_TOKEN",
            "file": LEDGER_FILE,
            "helm_value": "image.tag",
            "controller": {"kind": "flux-helmrelease", "name": "ledger"},
        },
    )
    return Catalog.model_validate(data)


class GitOpsHarness(DeployHarness):
    server: GitServer
    simulator: GitOpsSimulator

    def commits(self, name: str = "payments") -> list[str]:
        return git("log", "--format=%s", cwd=self.server.bare(name)).splitlines()

    def slack_traffic(self) -> str:
        return json.dumps([c.args for c in self.slack.state.calls], ensure_ascii=False)

    async def record(self, service: str = "checkout") -> Any:
        assert self.runtime.db is not None
        return (await self.runtime.db.run(lambda s: repo.history(s, service, "staging")))[0]


@pytest.fixture
async def harness(
    bot_settings: Settings,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
    git_server: GitServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[GitOpsHarness]:
    monkeypatch.setenv("FORGEBOT_TEST_GIT_TOKEN", TOKEN)
    git_server.create("payments", KUSTOMIZE_LAYOUT)
    git_server.create("ledger", HELM_LAYOUT)
    catalog = gitops_catalog(git_server)

    def prepare(runtime: Runtime) -> None:
        assert runtime.ctx is not None and runtime.ctx.gitops is not None
        runtime.ctx.rollouts.poll_seconds = 0.02
        runtime.ctx.gitops.poll_seconds = 0.02

    fake_kube.seed_deployment("checkout-staging", "checkout", f"{IMAGE}:1.4.1", replicas=3)
    fake_kube.seed_deployment(
        "ledger-staging", "ledger", "registry.example.com/payments/ledger:1.0.0", replicas=2
    )
    simulator = GitOpsSimulator(fake_kube, catalog, TOKEN)
    simulator.install()
    async with running_bot_harness(
        GitOpsHarness, bot_settings, catalog, fake_slack, fake_kube, kubeconfig, prepare=prepare
    ) as harness:
        harness.server, harness.simulator = git_server, simulator
        simulator.start()
        try:
            yield harness
        finally:
            await simulator.stop()


async def test_a_deploy_is_one_commit_followed_through_argo_cd_to_the_rollout(
    harness: GitOpsHarness,
) -> None:
    before = harness.server.head("payments")
    reply = await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    assert "Deploying checkout `1.4.2` to staging" in reply["text"], reply
    await harness.finished("staging")

    record = await harness.record()
    assert (record.kind, record.version, record.previous_version, record.outcome) == (
        "deploy",
        "1.4.2",
        "1.4.1",
        "succeeded",
    )
    head = harness.server.head("payments")
    assert record.desired_state_commit == head
    bare = harness.server.bare("payments")
    assert git("diff", "--name-only", before, head, cwd=bare).split() == [CHECKOUT_FILE]
    assert "+    newTag: 1.4.2   # forgebot sets this" in git("diff", before, head, cwd=bare)
    message = git("log", "-1", "--format=%an%n%B", cwd=bare)
    assert message.startswith("forgebot\nDeploy checkout 1.4.2 to staging")
    assert "Co-authored-by: U0DEVELOPER <" in message
    assert f"https://slack.com/archives/{record.message_channel}/p" in message, "links Slack"
    assert harness.image() == f"{IMAGE}:1.4.2", "the controller applied it"

    progress = harness.slack.state.messages_in("C0RANDOM")
    assert len(progress) == 1, "one message, updated in place"
    assert "done in" in json.dumps(progress)
    assert any(
        method == "GET" and path.endswith("/namespaces/argocd/applications/checkout-staging")
        for method, path, _, _ in harness.kube.requests
    ), "the Argo CD Application was followed"
    assert TOKEN not in harness.slack_traffic()


async def test_a_slack_retry_makes_one_commit(harness: GitOpsHarness) -> None:
    body = slash_command(
        DEVELOPER, "/deploy", "checkout 1.4.2 to staging", harness.slack.new_response_url()
    )
    for _ in range(2):
        response = await harness.client.send(body)
        assert response.status == 200
    await harness.finished("staging")
    assert harness.commits() == ["Deploy checkout 1.4.2 to staging", "initial desired state"]
    assert len(await harness.records("staging")) == 1


async def test_a_failed_sync_shows_the_controllers_message_and_rolls_back_by_revert(
    harness: GitOpsHarness,
) -> None:
    harness.simulator.fail_next('Deployment.apps "checkout" is invalid: spec.template: bad')
    await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    await harness.finished("staging")
    record = await harness.record()
    assert record.outcome == "failed"
    assert 'Deployment.apps "checkout" is invalid' in record.failure_reason
    message = next(iter(harness.slack.state.messages_in("C0RANDOM").values()))
    button = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"])
    assert button["value"] == "checkout|staging|git"

    harness.slack.state.reset()
    await harness.press_button(ONCALL, button, ts=str(message["ts"]))
    await harness.finished("staging", count=2)
    assert harness.commits()[:2] == [
        'Revert "Deploy checkout 1.4.2 to staging"',
        "Deploy checkout 1.4.2 to staging",
    ]
    assert "This reverts commit " + (record.desired_state_commit or "?") in git(
        "log", "-1", "--format=%B", cwd=harness.server.bare("payments")
    )
    assert "newTag: 1.4.1" in harness.server.show("payments", "main", CHECKOUT_FILE)
    rollback = await harness.record()
    assert (rollback.kind, rollback.version, rollback.outcome) == ("rollback", "1.4.1", "succeeded")


async def test_history_lists_the_commits_and_a_revision_is_refused_for_git(
    harness: GitOpsHarness,
) -> None:
    await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    await harness.finished("staging")
    harness.slack.state.reset()
    response = await harness.client.send(
        slash_command(
            DEVELOPER, "/forge", "history checkout staging", harness.slack.new_response_url()
        )
    )
    assert response.status == 200
    call = await harness.until("response_url")
    text = json.dumps(call.args)
    assert "Deploy checkout 1.4.2 to staging" in text and "initial desired state" in text

    harness.slack.state.reset()
    response = await harness.client.send(
        slash_command(
            ONCALL, "/rollback", "checkout staging to 3", harness.slack.new_response_url()
        )
    )
    body = response.json() if response.body else (await harness.until("response_url")).args
    assert "delivered through Git" in json.dumps(body)


async def test_a_flux_helm_release_deploy_and_the_already_there_answer(
    harness: GitOpsHarness,
) -> None:
    reply = await harness.deploy(ELSEWHERE, "ledger 1.1 to staging")
    assert "Deploying ledger `1.1`" in reply["text"], reply
    for _ in range(200):
        record = await harness.record("ledger")
        if record.outcome != "in_progress":
            break
        await harness.idle()
    assert record.outcome == "succeeded", record.failure_reason
    assert 'tag: "1.1"  # forgebot: the deployed version' in harness.server.show(
        "ledger", "main", LEDGER_FILE
    )
    again = await harness.deploy(DEVELOPER, "ledger 1.1 to staging")
    assert "already holds `1.1`" in again["text"]


async def test_a_controller_that_never_applies_the_commit_times_out_with_its_own_words(
    harness: GitOpsHarness,
) -> None:
    await harness.simulator.stop()  # Argo CD stops reconciling
    await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    for _ in range(400):
        record = await harness.record()
        if record.desired_state_commit:
            break
        await asyncio.sleep(0.05)
    assert record.desired_state_commit == harness.server.head("payments"), "pushed first"
    harness.clock.advance(timedelta(seconds=601))
    await harness.finished("staging")
    record = await harness.record()
    assert record.outcome == "failed"
    assert "Argo CD Application checkout-staging had not applied" in record.failure_reason
    assert "it says: successfully synced" in record.failure_reason, record.failure_reason


async def test_a_freeze_reports_the_controllers_sync_windows(harness: GitOpsHarness) -> None:
    projects = next(k for k in KINDS if k.plural == "appprojects")
    harness.kube.create(
        projects,
        "argocd",
        {
            "metadata": {"name": "default"},
            "spec": {
                "syncWindows": [
                    {
                        "kind": "deny",
                        "schedule": "0 22 * * *",
                        "duration": "8h",
                        "applications": ["checkout-*"],
                        "timeZone": "Europe/Berlin",
                    },
                    {
                        "kind": "allow",
                        "schedule": "0 9 * * 1-5",
                        "duration": "9h",
                        "applications": ["ledger-*"],
                    },
                ]
            },
        },
    )
    harness.slack.state.reset()
    response = await harness.client.send(
        slash_command(
            ONCALL,
            "/forge",
            "freeze staging for 2h incident 4411",
            harness.slack.new_response_url(),
        )
    )
    assert response.status == 200
    text = json.dumps((await harness.until("response_url")).args, ensure_ascii=False)
    assert "staging* is frozen" in text
    assert (
        "Argo CD Application checkout-staging (checkout): deny `0 22 * * *` Europe/Berlin for 8h"
        in text
    )
    assert "Flux HelmRelease ledger (ledger): no sync windows" in text
