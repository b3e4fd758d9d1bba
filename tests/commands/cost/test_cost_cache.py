"""The Cost Explorer cache: concurrent identical questions share one request, answers live in
the database for the TTL (so other replicas find them), and expire after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import Period
from commands.cost.service import cost_query
from core.catalog import Catalog
from core.config import Settings
from integrations.aws.cost_explorer import CostExplorerGateway
from integrations.sandbox.aws_seed import DemoCostModel, seed_demo_costs
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import SlackIdentity, slash_command
from storage import cost as repo
from storage.db import Database
from tests.commands.cost.harness import NOW, CostBot, cost_bot
from tests.fixtures.aws import MotoServer

PAYMENTS = Scope(ScopeKind.TEAM, "payments")


@pytest.fixture
async def bot(
    bot_settings: Settings, catalog: Catalog, fake_slack: RunningFakeSlack, moto_aws: MotoServer
) -> AsyncIterator[CostBot]:
    seed_demo_costs(
        moto_aws.url,
        [cost_query(PAYMENTS, Period.THIS_MONTH, NOW.date(), catalog)],
        model=DemoCostModel(today=NOW.date()),
    )
    async with cost_bot(bot_settings, catalog, fake_slack) as running:
        yield running


def gateway_of(bot: CostBot) -> CostExplorerGateway:
    assert bot.runtime.ctx is not None
    source = bot.runtime.ctx.cost_source
    assert isinstance(source, CostExplorerGateway)
    return source


async def test_concurrent_identical_commands_share_one_request(bot: CostBot) -> None:
    users = [
        SlackIdentity(user_id=f"U0DEV{i:03d}", user_name=f"dev{i}", channel_id="C0PAYMENTS")
        for i in range(20)
    ]
    responses = await asyncio.gather(
        *(
            bot.client.send(
                slash_command(u, "/cost", "team payments", bot.slack.new_response_url())
            )
            for u in users
        )
    )
    assert all(r.status == 200 for r in responses)
    await bot.slack.until_call("response_url", count=20, timeout=20)

    assert gateway_of(bot).requests_made == 1
    replies = [c.args for c in bot.slack.state.find("response_url")]
    assert len({str(r["blocks"]) for r in replies}) == 1, "everyone saw the same figures"


async def test_answers_expire_after_the_ttl(bot: CostBot) -> None:
    service = bot.service
    await service.summary(PAYMENTS, Period.THIS_MONTH)
    bot.clock.advance(service.cache.ttl - timedelta(seconds=1))
    cached = await service.summary(PAYMENTS, Period.THIS_MONTH)
    assert cached.from_cache and gateway_of(bot).requests_made == 1

    bot.clock.advance(timedelta(seconds=2))
    fresh = await service.summary(PAYMENTS, Period.THIS_MONTH)
    assert not fresh.from_cache and gateway_of(bot).requests_made == 2
    assert fresh.total == cached.total  # moto answers a repeated body with the same answer


async def test_cache_ttl_is_configurable(
    bot_settings: Settings, catalog: Catalog, fake_slack: RunningFakeSlack, moto_aws: MotoServer
) -> None:
    settings = Settings(**{**bot_settings.model_dump(by_alias=False), "cost_cache_ttl": "30m"})
    async with cost_bot(settings, catalog, fake_slack) as bot:
        assert bot.service.cache.ttl == timedelta(minutes=30)


# --- the repository on SQLite and PostgreSQL ---------------------------------------------------


async def test_cache_entries_are_replaced_and_expire(database: Database) -> None:
    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    await database.run(lambda s: repo.store(s, "k", "one", t0, t0 + timedelta(hours=6)))
    await database.run(lambda s: repo.store(s, "k", "two", t0, t0 + timedelta(hours=7)))

    entry = await database.run(lambda s: repo.cached(s, "k", t0 + timedelta(hours=6, minutes=30)))
    assert entry is not None and entry.payload == "two"
    assert await database.run(lambda s: repo.cached(s, "k", t0 + timedelta(hours=7))) is None
    assert await database.run(lambda s: repo.purge_expired(s, t0 + timedelta(hours=8))) == 1


async def test_an_alert_is_claimed_once(database: Database) -> None:
    t0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

    def alert() -> repo.BudgetAlert:
        return repo.BudgetAlert(
            alert_key="payments/team/payments|2026-11|actual|80",
            team="payments",
            budget="payments/team/payments",
            month="2026-11",
            kind="actual",
            threshold=80,
            amount="4100",
            claimed_at=t0,
        )

    assert await database.run(lambda s: repo.claim_alert(s, alert()))
    assert not await database.run(lambda s: repo.claim_alert(s, alert()))
    await database.run(lambda s: repo.release_alert(s, alert().alert_key))
    assert await database.run(lambda s: repo.claim_alert(s, alert())), "released: may try again"
    await database.run(
        lambda s: repo.mark_alert_sent(s, alert().alert_key, "C0PAYMENTS", "1.2", t0)
    )
    await database.run(lambda s: repo.release_alert(s, alert().alert_key))
    assert not await database.run(lambda s: repo.claim_alert(s, alert())), "a sent alert stays"


async def test_an_answer_in_memory_is_the_ack_itself(bot: CostBot) -> None:
    from tests.fixtures.slack import DEVELOPER

    await bot.command(DEVELOPER, "/cost", "")
    before = len(bot.slack.state.find("response_url"))

    response = await bot.client.send(
        slash_command(DEVELOPER, "/cost", "team payments", bot.slack.new_response_url())
    )

    acked = response.json()
    assert acked["response_type"] == "ephemeral"
    assert "Cost of team payments, this month" in acked["text"]
    assert len(bot.slack.state.find("response_url")) == before


async def test_another_replica_finds_the_answer_in_the_database(
    bot: CostBot, bot_settings: Settings, catalog: Catalog, fake_slack: RunningFakeSlack
) -> None:
    first = await bot.service.summary(PAYMENTS, Period.THIS_MONTH)
    bot.clock.advance(timedelta(hours=1))

    async with cost_bot(bot_settings, catalog, fake_slack, now=bot.clock.now()) as replica:
        seen = await replica.service.summary(PAYMENTS, Period.THIS_MONTH)
        assert gateway_of(replica).requests_made == 0
    assert seen.from_cache and seen.fetched_at == first.fetched_at
    assert seen.total == first.total and seen.services == first.services
