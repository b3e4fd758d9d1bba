"""The error-budget gate end to end: `/deploy` to prod asks the SLO capability, which asks a
real Prometheus backfilled with the synthetic stories (a service that burned its budget last
week, a healthy one). Nothing here is stubbed: the figures come from the stored series."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from commands.deploy.parse import DeployRequest, Version
from core.auth import Actor
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.prometheus_server import RunningPrometheus
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import slash_command
from tests.bot_harness import BotHarness, running_bot_harness
from tests.fixtures.prometheus import SLO_AT, with_slo_services
from tests.fixtures.slack import DEVELOPER


@pytest.fixture
async def harness(
    bot_settings: Settings,
    catalog: Catalog,
    prometheus_server: RunningPrometheus,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[BotHarness]:
    for service in ("burned", "healthy"):
        fake_kube.seed_deployment(
            service, service, f"registry.example.com/payments/{service}:1.0.0"
        )
    settings = bot_settings.model_copy(update={"prometheus_url": prometheus_server.url})
    async with running_bot_harness(
        BotHarness,
        settings,
        with_slo_services(catalog),
        fake_slack,
        fake_kube,
        kubeconfig,
        start=SLO_AT,
    ) as harness:
        yield harness


def _request(service: str, hotfix: bool = False) -> DeployRequest:
    return DeployRequest(service, Version("1.1.0"), "prod", hotfix)


async def test_a_burned_budget_blocks_prod_with_its_figures(harness: BotHarness) -> None:
    assert harness.runtime.ctx is not None
    deploys = harness.runtime.ctx.deploys

    blocked = await deploys.plan(Actor("U0DEVELOPER"), _request("burned"))
    assert [g.name for g in blocked.blocked] == ["error budget"]
    detail = blocked.blocked[0].detail
    assert detail.startswith("exhausted: ") and "%" in detail, detail

    # A hotfix is not gated; on-call may override with a reason; a healthy budget passes.
    assert not (await deploys.plan(Actor("U0DEVELOPER"), _request("burned", True))).blocked
    oncall = await deploys.plan(Actor("U0ONCALL"), _request("burned"))
    assert not oncall.blocked and oncall.needs_reason
    healthy = await deploys.plan(Actor("U0DEVELOPER"), _request("healthy"))
    budget = next(g for g in healthy.gates if g.name == "error budget")
    assert budget.state == "pass" and budget.detail, budget

    # What the developer sees in Slack: the gate's reason, in the dialog prod opens.
    await harness.client.send(
        slash_command(
            DEVELOPER, "/deploy", "burned 1.1.0 to prod", harness.slack.new_response_url()
        )
    )
    shown = await harness.slack.state.until(
        lambda calls: [
            c
            for c in calls
            if c.method == "views.update" and "Deploy blocked" in str(c.args.get("view"))
        ],
        timeout=10,
    )
    assert "error budget" in str(shown[-1].args["view"]) and detail[:40] in str(
        shown[-1].args["view"]
    )
