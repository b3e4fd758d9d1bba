"""`/forge status SERVICE ENV` shows the owning team's cost budget: spent this month and the
forecast against the budget, from the cost capability (moto's Cost Explorer here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal

import pytest

from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import Period
from core.catalog import Catalog
from core.clock import ManualClock
from core.config import Settings
from core.pricing import money
from integrations.aws.cost_explorer import CostExplorerGateway
from integrations.aws.session import AwsClients, AwsConfig
from integrations.sandbox.slack_api import RunningFakeSlack
from tests.commands.cost.harness import cost_bot
from tests.commands.cost.test_cost_flow import TODAY, seed, spend
from tests.fixtures.aws import MotoServer
from tests.fixtures.slack import ONCALL
from tests.integrations.aws.ce_stub import CostExplorerStub, Reply, start_cost_explorer_stub

PAYMENTS = Scope(ScopeKind.TEAM, "payments")


@pytest.fixture
def refusing(
    aws_dummy_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CostExplorerStub]:
    """A Cost Explorer that refuses every cost query (a role without ce:GetCostAndUsage)."""
    for running in start_cost_explorer_stub():
        monkeypatch.setenv("AWS_ENDPOINT_URL", running.url)
        running.stub.always(
            "GetCostAndUsage",
            Reply.error("AccessDeniedException", "not authorized to perform ce:GetCostAndUsage"),
        )
        yield running.stub


async def test_status_shows_the_team_cost_budget(
    bot_settings: Settings, catalog: Catalog, fake_slack: RunningFakeSlack, moto_aws: MotoServer
) -> None:
    seed(moto_aws, catalog, (PAYMENTS, Period.THIS_MONTH))
    async with cost_bot(bot_settings, catalog, fake_slack) as bot:
        reply = await bot.command(ONCALL, "/forge", "status checkout prod")
    body = json.dumps(reply, ensure_ascii=False)
    spent = spend("payments", date(2026, 11, 1), date(2026, 11, 25))
    so_far = spend("payments", date(2026, 11, 1), TODAY)
    basis = spend("payments", TODAY - timedelta(days=14), TODAY)
    forecast = (so_far + basis / 14 * 7).quantize(Decimal("0.01"))
    assert "*Cost budget (payments)*" in body, body
    assert f"{money(spent, 'USD')} of $5,000.00 this month" in body, body
    assert f"forecast {money(forecast, 'USD')}" in body, body


async def test_status_when_cost_explorer_refuses_says_so_and_answers_the_rest(
    refusing: CostExplorerStub,
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    aws_test_config: AwsConfig,
) -> None:
    def gateway(clock: ManualClock) -> CostExplorerGateway:
        return CostExplorerGateway(AwsClients(aws_test_config), clock)

    async with cost_bot(bot_settings, catalog, fake_slack, cost_source=gateway) as bot:
        reply = await bot.command(ONCALL, "/forge", "status checkout prod")
    body = json.dumps(reply, ensure_ascii=False)
    assert "*Cost budget*" in body and "cost data unavailable" in body, body
    assert "ce:GetCostAndUsage" in body and "Traceback" not in body
    assert "*Last deploys*" in body, "the rest of the status is answered"
