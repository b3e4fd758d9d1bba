"""The demo's seeded costs, read back through the gateway from moto: consistent whichever way
they are grouped, paginated like Cost Explorer, in the order the queries are made."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from core.clock import ManualClock
from integrations.aws.cost_explorer import CostExplorerGateway
from integrations.aws.cost_types import SERVICE, CostQuery, DateRange, Granularity, TagFilter
from integrations.aws.resource_types import ENVIRONMENT_TAG, ResourceKind
from integrations.aws.resources import AwsResourceGateway
from integrations.aws.session import AwsClients
from integrations.sandbox.aws_seed import (
    EC2_COMPUTE,
    RDS,
    S3,
    DemoCostModel,
    sandbox_clients,
    seed_demo_costs,
    seed_environment_resources,
)
from tests.fixtures.aws import MotoServer

TODAY = date(2026, 3, 18)
MONTH_TO_DATE = DateRange(start=date(2026, 3, 1), end=TODAY)
# Payments spends 146.75 a weekday and 60% of that on weekends; March 1-17, 2026 has
# 12 weekdays and 5 weekend days: 12 * 146.75 + 5 * 88.05.
PAYMENTS_MONTH_TO_DATE = Decimal("2201.25")


@pytest.fixture
def gateway(moto_clients: AwsClients) -> CostExplorerGateway:
    return CostExplorerGateway(moto_clients, ManualClock(datetime(2026, 3, 18, 9, tzinfo=UTC)))


async def test_seeded_costs_agree_across_groupings(
    moto_aws: MotoServer, gateway: CostExplorerGateway
) -> None:
    by_team = CostQuery(period=MONTH_TO_DATE, granularity=Granularity.DAILY, group_by="team")
    by_service = CostQuery(period=MONTH_TO_DATE, granularity=Granularity.DAILY, group_by=SERVICE)
    overall = CostQuery(period=MONTH_TO_DATE, granularity=Granularity.MONTHLY)
    payments = CostQuery(
        period=MONTH_TO_DATE,
        granularity=Granularity.DAILY,
        filter_tag=TagFilter("team", "payments"),
        group_by=SERVICE,
    )
    queued = seed_demo_costs(
        moto_aws.url,
        [by_team, by_service, overall, payments],
        model=DemoCostModel(TODAY),
        per_page=20,
    )

    team_report = await gateway.cost_and_usage(MONTH_TO_DATE, Granularity.DAILY, group_by="team")
    service_report = await gateway.cost_and_usage(
        MONTH_TO_DATE, Granularity.DAILY, group_by=SERVICE
    )
    overall_report = await gateway.cost_and_usage(MONTH_TO_DATE, Granularity.MONTHLY)
    payments_report = await gateway.cost_and_usage(
        MONTH_TO_DATE, Granularity.DAILY, filter_tag=("team", "payments"), group_by=SERVICE
    )

    assert team_report.by_group()["payments"] == PAYMENTS_MONTH_TO_DATE
    assert payments_report.total == PAYMENTS_MONTH_TO_DATE
    assert set(payments_report.by_group()) == {EC2_COMPUTE, RDS, S3}
    assert set(team_report.by_group()) == {"payments", "search", "platform", ""}
    assert team_report.total == service_report.total == overall_report.total
    assert len(team_report.buckets) == 17 and len(overall_report.buckets) == 1
    assert team_report.requests > 1, "grouped daily answers should span several pages"
    assert gateway.requests_made == queued
    assert overall_report.estimated


async def test_monthly_buckets_split_at_month_ends_and_only_this_month_is_estimated(
    moto_aws: MotoServer, gateway: CostExplorerGateway
) -> None:
    period = DateRange(start=date(2026, 2, 1), end=TODAY)
    query = CostQuery(
        period=period, granularity=Granularity.MONTHLY, filter_tag=TagFilter("team", "payments")
    )
    seed_demo_costs(moto_aws.url, [query], model=DemoCostModel(TODAY))

    report = await gateway.cost_and_usage(
        period, Granularity.MONTHLY, filter_tag=("team", "payments")
    )

    february, march = report.buckets
    # February 2026: 20 weekdays and 8 weekend days.
    assert february.total == Decimal("3639.40") and not february.estimated
    assert march.total == PAYMENTS_MONTH_TO_DATE and march.estimated
    assert march.period == MONTH_TO_DATE


async def test_a_repeated_query_is_answered_again_without_queueing_twice(
    moto_aws: MotoServer, gateway: CostExplorerGateway
) -> None:
    query = CostQuery(period=MONTH_TO_DATE, granularity=Granularity.MONTHLY)
    queued = seed_demo_costs(moto_aws.url, [query, query], model=DemoCostModel(TODAY))

    first = await gateway.cost_and_usage(MONTH_TO_DATE, Granularity.MONTHLY)
    second = await gateway.cost_and_usage(MONTH_TO_DATE, Granularity.MONTHLY)

    assert queued == 1
    assert first.total == second.total > 0


async def test_demo_clients_need_no_aws_environment(
    moto_server: MotoServer, aws_isolated_env: object
) -> None:
    moto_server.reset()
    seed_environment_resources(moto_server.url, "pv-9")
    seed_demo_costs(
        moto_server.url,
        [CostQuery(period=MONTH_TO_DATE, granularity=Granularity.MONTHLY)],
        model=DemoCostModel(TODAY),
    )
    clients = sandbox_clients(moto_server.url)
    clock = ManualClock(datetime(2026, 3, 18, 9, tzinfo=UTC))

    found = await AwsResourceGateway(clients).find_tagged(ENVIRONMENT_TAG, "pv-9")
    report = await CostExplorerGateway(clients, clock).cost_and_usage(
        MONTH_TO_DATE, Granularity.MONTHLY
    )

    assert {r.kind for r in found.resources} == set(ResourceKind)
    assert report.total > 0
