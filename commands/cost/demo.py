"""Cost data for `forgebot demo`: moto's Cost Explorer seeded with one consistent set of
daily costs per team, and the bot's cache warmed in the same order.

moto hands queued answers to requests in the order they arrive, so the demo asks every
question once, right after seeding, in the seeding order; from then on the cache (and moto's
memory of each request) answers, whatever order people type commands in.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from commands.cost import chart
from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import Period
from commands.cost.service import CostService, cost_query
from commands.cost.untagged import UntaggedCost, untagged_query
from core.catalog import Catalog
from integrations.sandbox.aws_seed import (
    DEMO_DAILY_SPEND,
    EC2_COMPUTE,
    DemoCostModel,
    reset_moto,
    seed_demo_costs,
)

# The demo's search team runs its EC2 a little hotter than the fixtures' model, so its forecast
# is over its $2,000 budget in every month (a 28-day one too) and the budget check alerts it.
DEMO_SPEND = {
    **DEMO_DAILY_SPEND,
    "search": {**DEMO_DAILY_SPEND["search"], EC2_COMPUTE: Decimal("65.70")},
}


async def seed_and_warm(service: CostService, endpoint_url: str, catalog: Catalog) -> int:
    """Seed every team's costs for every period and fetch each once; returns the queries."""
    today = service.today()
    questions = [
        (Scope(ScopeKind.TEAM, team.name), period) for team in catalog.teams for period in Period
    ]
    queries = [cost_query(scope, period, today, catalog) for scope, period in questions]
    queries.append(untagged_query(today, catalog))  # asked last, by `/forge budget`

    def seed() -> None:
        reset_moto(endpoint_url)
        seed_demo_costs(
            endpoint_url, queries, model=DemoCostModel(today=today, daily_spend=DEMO_SPEND)
        )

    await asyncio.to_thread(seed)
    await asyncio.to_thread(chart.warm)
    for scope, period in questions:
        await service.summary(scope, period)
    await UntaggedCost(catalog=catalog, source=service.source, cache=service.cache).refresh(today)
    return len(queries)
