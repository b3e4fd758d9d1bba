"""GitOps deploys to environments marked `via_pull_request`: a branch pushed to the real Git
server, a pull request through the GitHub or GitLab API (loopback fakes that check the request
shapes), the two-person rule met by the review or by the Slack approval, and the merge followed
through the controller like any commit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.runtime import Runtime
from commands.deploy import views
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.codehost_api import RunningFakeCodeHost, start_fake_codehost
from integrations.sandbox.gitops_simulator import GitOpsSimulator
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from storage import deployments as repo
from tests.bot_harness import running_bot_harness
from tests.commands.deploy.test_deploy import DeployHarness
from tests.fixtures.git_server import HELM_LAYOUT, KUSTOMIZE_LAYOUT, TOKEN, GitServer, git
from tests.fixtures.slack import DEVELOPER, ONCALL

EXAMPLE = Path(__file__).parents[3] / "catalog.example.yaml"
STAGING_FILE = "apps/checkout/overlays/staging/kustomization.yaml"
PROD_FILE = "apps/checkout/overlays/prod/kustomization.yaml"
LEDGER_FILE = "envs/staging/ledger-values.yaml"
IMAGE = "registry.example.com/payments/checkout"


def catalog_for(server: GitServer, api: RunningFakeCodeHost, approval: str) -> Catalog:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    services = {s["name"]: s for s in data["services"]}
    prod = next(e for e in data["environments"] if e["name"] == "prod")
    prod["gitops"] = {"via_pull_request": True, "approval": approval}
    prod["freeze_windows"] = []
    services["checkout"]["workloads"]["prod"].update(
        delivery="gitops",
        gitops={
            "repository": server.repo_url("platform/payments"),
            "credentials": "env:FORGEBOT_TEST_GIT_TOKEN",
            "file": PROD_FILE,
            "kustomize_image": IMAGE,
            "controller": {"kind": "argocd", "name": "checkout-prod"},
            "code_host": "github",
            "code_host_api": api.github_url,
        },
    )
    services["ledger"]["workloads"]["prod"].update(
        delivery="gitops",
        gitops={
            "repository": server.repo_url("platform/ledger"),
            "credentials": "env:FORGEBOT_TEST_GIT_TOKEN",
            "file": LEDGER_FILE,
            "helm_value": "image.tag",
            "controller": {"kind": "flux-kustomization", "name": "ledger-prod"},
            "code_host": "gitlab",
            "code_host_api": api.gitlab_url,
        },
    )
    return Catalog.model_validate(data)


class PullRequestHarness(DeployHarness):
    server: GitServer
    api: RunningFakeCodeHost

    async def record(self, service: str) -> Any:
        assert self.runtime.db is not None
        return (await self.runtime.db.run(lambda s: repo.history(s, service, "prod")))[0]

    async def settled(self, service: str) -> Any:
        """The service's prod rollout once it has finished (bounded wait)."""
        assert self.runtime.db is not None
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            found = await self.runtime.db.run(lambda s: repo.history(s, service, "prod"))
            if found and found[0].outcome != "in_progress":
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"the {service} rollout in prod did not finish")

    async def confirm(self, service: str, version: str) -> dict[str, Any]:
        await self.deploy(DEVELOPER, f"{service} {version} to prod", reply=False)
        view = await self.latest_view()
        await self.submit_view(DEVELOPER, view, {})
        return view

    async def open_pull(self) -> int:
        """Wait (bounded) for the deploy's operation to open its pull request."""
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            if self.api.state.pulls:
                return self.api.state.pulls[-1].number
            await asyncio.sleep(0.05)
        assert self.runtime.db is not None
        records = await self.runtime.db.run(lambda s: repo.history(s, "checkout", "prod"))
        raise AssertionError(
            f"no pull request was opened: {self.api.state.requests} "
            f"{[(r.outcome, r.failure_reason) for r in records]} "
            f"{[c.method for c in self.slack.state.calls]}"
        )


async def _harness(
    approval: str,
    bot_settings: Settings,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
    git_server: GitServer,
) -> AsyncIterator[PullRequestHarness]:
    layout = {**KUSTOMIZE_LAYOUT, PROD_FILE: KUSTOMIZE_LAYOUT[STAGING_FILE]}
    git_server.create("platform/payments", layout)
    git_server.create("platform/ledger", HELM_LAYOUT)
    api = start_fake_codehost(
        TOKEN,
        head_sha=lambda name, branch: git_server.branch_head(name, branch),
        merge=lambda name, head, base, message: git_server.merge(name, head, base, message),
    )
    catalog = catalog_for(git_server, api, approval)

    def prepare(runtime: Runtime) -> None:
        assert runtime.ctx is not None and runtime.ctx.gitops is not None
        runtime.ctx.rollouts.poll_seconds = 0.02
        runtime.ctx.gitops.poll_seconds = 0.02
        runtime.ctx.gitops.review_poll_seconds = 0.02

    fake_kube.seed_deployment("checkout", "checkout", f"{IMAGE}:1.4.1", replicas=2)
    fake_kube.seed_deployment("ledger", "ledger", "registry.example.com/payments/ledger:1.0.0")
    simulator = GitOpsSimulator(fake_kube, catalog, TOKEN)
    simulator.install()
    try:
        async with running_bot_harness(
            PullRequestHarness,
            bot_settings,
            catalog,
            fake_slack,
            fake_kube,
            kubeconfig,
            prepare=prepare,
        ) as harness:
            harness.server, harness.api = git_server, api
            simulator.start()
            try:
                yield harness
            finally:
                await simulator.stop()
    finally:
        api.stop()


@pytest.fixture
async def by_review(
    bot_settings: Settings,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
    git_server: GitServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[PullRequestHarness]:
    monkeypatch.setenv("FORGEBOT_TEST_GIT_TOKEN", TOKEN)
    async for harness in _harness(
        "review", bot_settings, fake_slack, fake_kube, kubeconfig, git_server
    ):
        yield harness


@pytest.fixture
async def by_slack(
    bot_settings: Settings,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
    git_server: GitServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[PullRequestHarness]:
    monkeypatch.setenv("FORGEBOT_TEST_GIT_TOKEN", TOKEN)
    async for harness in _harness(
        "slack", bot_settings, fake_slack, fake_kube, kubeconfig, git_server
    ):
        yield harness


async def test_a_github_pull_request_waits_for_its_review_then_its_merge_is_the_deploy(
    by_review: PullRequestHarness,
) -> None:
    harness = by_review
    view = await harness.confirm("checkout", "1.4.2")
    text = json.dumps(view)
    assert "an approving review of the pull request" in text, "the review is the second person"
    assert view["submit"]["text"] == "Deploy", "no Slack approval asked"
    before = harness.server.head("platform/payments")

    number = await harness.open_pull()
    pull = harness.api.state.pulls[0]
    assert pull.base == "main" and pull.head.startswith("forgebot/checkout-prod-")
    assert pull.title == "Deploy checkout 1.4.2 to prod"
    assert harness.server.head("platform/payments") == before, "nothing merged before review"
    record = await harness.record("checkout")
    assert record.outcome == "in_progress"

    harness.api.state.approve(number, "alice")
    record = await harness.settled("checkout")
    assert record.outcome == "succeeded", record.failure_reason
    bare = harness.server.bare("platform/payments")
    merge = harness.server.head("platform/payments")
    assert record.desired_state_commit == merge
    parents = git("rev-list", "--parents", "-n", "1", merge, cwd=bare).split()[1:]
    assert parents[0] == before and len(parents) == 2, "a merge of the pull request"
    assert git("diff", "--name-only", before, merge, cwd=bare).split() == [PROD_FILE]
    assert harness.image("checkout") == f"{IMAGE}:1.4.2", "Argo CD applied the merge"
    methods = [m for m, _ in harness.api.state.requests]
    assert "POST" in methods and "PUT" in methods


async def test_a_gitlab_merge_request_is_merged_at_once_after_the_slack_approval(
    by_slack: PullRequestHarness,
) -> None:
    harness = by_slack
    view = await harness.confirm("ledger", "1.1")
    assert view["submit"]["text"] == "Ask for approval", "approval: slack keeps the card"
    card = await harness.until("chat.postMessage", channel="C0PAYMENTS")
    approve = next(
        e
        for b in card.args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == views.DEPLOY_APPROVE
    )
    await harness.press_button(ONCALL, approve)
    record = await harness.settled("ledger")
    assert record.outcome == "succeeded", record.failure_reason
    pull = harness.api.state.pulls[0]
    assert pull.state == "merged" and not pull.approved_by
    assert any(
        "/api/v4/projects/platform%2Fledger/merge_requests" in p
        for _, p in harness.api.state.requests
    )
    assert 'tag: "1.1"' in harness.server.show("platform/ledger", "main", LEDGER_FILE)
    assert record.desired_state_commit == harness.server.head("platform/ledger")


async def test_a_pull_request_closed_unmerged_fails_the_deploy(
    by_review: PullRequestHarness,
) -> None:
    harness = by_review
    await harness.confirm("checkout", "1.4.2")
    number = await harness.open_pull()
    harness.api.state.close(number)
    record = await harness.settled("checkout")
    assert record.outcome == "failed"
    assert f"pull request #{number} was closed without merging" in record.failure_reason
