"""Untagged spend: the cost that carries no `team` tag, so no team's figures include it.

FinOps lives on tagging, so forgebot shows the untagged share of the account's spend next to
team breakdowns and budgets, and tells the platform team when it grows. One account-wide
Cost Explorer query answers it: monthly, grouped by the `team` tag, from the first of last
month to today (Cost Explorer names untagged cost `team$`). It is cached under one fixed key,
so its last known answer (with its age) can be shown anywhere without another request: it
is refreshed by `/forge budget` and by the daily budget check, never by `/forge cost`, which
keeps `/forge cost`'s call budget as stated in service.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from commands.cost.cache import Cached, CostCache
from commands.cost.service import (
    PASSING_FAILURES,
    REPORT_CODEC,
    TEAM_TAG,
    CostNotConfigured,
    cost_metric,
)
from core.catalog import Catalog
from integrations.aws.cost_explorer import CostSource
from integrations.aws.cost_types import CostMetric, CostQuery, CostReport, DateRange, Granularity
from integrations.aws.errors import AwsCredentialsMissing

CACHE_KEY = "ce:untagged"


@dataclass(frozen=True)
class MonthShare:
    month: DateRange
    """The days counted (this month: up to today)."""
    untagged: Decimal
    total: Decimal

    @property
    def share(self) -> Decimal | None:
        return self.untagged / self.total if self.total else None


@dataclass(frozen=True)
class UntaggedSpend:
    currency: str
    metric: CostMetric
    this_month: MonthShare
    last_month: MonthShare
    fetched_at: datetime
    stale: str | None = None

    @property
    def grew(self) -> bool:
        """Whether this month's untagged share is above last month's."""
        now, before = self.this_month.share, self.last_month.share
        return now is not None and (before is None or now > before) and now > 0


def untagged_query(today: date, catalog: Catalog) -> CostQuery:
    this_month = DateRange.month_of(today)
    last_month = DateRange.month_of(this_month.start - timedelta(days=1))
    return CostQuery(
        period=DateRange(start=last_month.start, end=today + timedelta(days=1)),
        granularity=Granularity.MONTHLY,
        group_by=TEAM_TAG,
        metric=cost_metric(catalog),
    )


def read(cached: Cached[CostReport]) -> UntaggedSpend:
    report = cached.value
    months: dict[date, MonthShare] = {}
    for bucket in report.buckets:
        untagged = sum((g.amount for g in bucket.groups if g.key == ""), Decimal(0))
        months[bucket.period.start.replace(day=1)] = MonthShare(
            bucket.period, untagged, bucket.total
        )
    period = report.query.period
    this_start = (period.end - timedelta(days=1)).replace(day=1)
    empty_this = MonthShare(DateRange(start=this_start, end=period.end), Decimal(0), Decimal(0))
    empty_last = MonthShare(DateRange(start=period.start, end=this_start), Decimal(0), Decimal(0))
    return UntaggedSpend(
        currency=report.currency,
        metric=report.query.metric,
        this_month=months.get(this_start, empty_this),
        last_month=months.get(period.start, empty_last),
        fetched_at=cached.fetched_at,
        stale=cached.stale,
    )


class UntaggedCost:
    def __init__(self, *, catalog: Catalog, source: CostSource, cache: CostCache) -> None:
        self.catalog = catalog
        self.source = source
        self.cache = cache

    async def refresh(self, today: date) -> UntaggedSpend:
        """The account's untagged spend (one request per cache TTL, shared by replicas)."""
        query = untagged_query(today, self.catalog)

        async def fetch() -> CostReport:
            try:
                return await self.source.cost_and_usage(
                    query.period, query.granularity, group_by=query.group_by, metric=query.metric
                )
            except AwsCredentialsMissing:
                raise CostNotConfigured(
                    "Cost Explorer is not set up for forgebot: it has no AWS credentials."
                ) from None

        key = f"{CACHE_KEY}:{query.metric.value}"
        return read(await self.cache.get(key, fetch, REPORT_CODEC, stale_on=PASSING_FAILURES))

    def in_memory(self) -> UntaggedSpend | None:
        """The last answer this process holds, unexpired, without I/O (for an ack)."""
        cached = self.cache.peek(f"{CACHE_KEY}:{cost_metric(self.catalog).value}")
        return read(cached) if cached is not None else None

    async def last_known(self) -> UntaggedSpend | None:
        """The last answer held (fresh or not), without asking Cost Explorer."""
        key = f"{CACHE_KEY}:{cost_metric(self.catalog).value}"
        cached = await self.cache.last_known(key, REPORT_CODEC)
        return read(cached) if cached is not None else None
