"""What Cost Explorer is asked and what it answers, as typed values with `Decimal` money."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, model_validator

# Cost Explorer's dimension for grouping by service; any other `group_by` is a tag key.
SERVICE = "SERVICE"
DEFAULT_CURRENCY = "USD"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class CostMetric(StrEnum):
    """Which of Cost Explorer's cost metrics a figure is (the catalog's `cost.metric`)."""

    UNBLENDED = "unblended"
    AMORTIZED = "amortized"
    NET_UNBLENDED = "net-unblended"
    NET_AMORTIZED = "net-amortized"

    @property
    def usage_name(self) -> str:
        """The name in GetCostAndUsage's `Metrics`."""
        return {
            CostMetric.UNBLENDED: "UnblendedCost",
            CostMetric.AMORTIZED: "AmortizedCost",
            CostMetric.NET_UNBLENDED: "NetUnblendedCost",
            CostMetric.NET_AMORTIZED: "NetAmortizedCost",
        }[self]

    @property
    def forecast_name(self) -> str:
        """The name in GetCostForecast's `Metric`."""
        return {
            CostMetric.UNBLENDED: "UNBLENDED_COST",
            CostMetric.AMORTIZED: "AMORTIZED_COST",
            CostMetric.NET_UNBLENDED: "NET_UNBLENDED_COST",
            CostMetric.NET_AMORTIZED: "NET_AMORTIZED_COST",
        }[self]

    @property
    def label(self) -> str:
        """In words for a person: "unblended cost", "net amortized cost"."""
        return self.value.replace("-", " ") + " cost"


class Granularity(StrEnum):
    DAILY = "DAILY"
    MONTHLY = "MONTHLY"


class TagFilter(NamedTuple):
    """Costs of resources carrying tag `key` = `value`; an empty value means "untagged"."""

    key: str
    value: str


class DateRange(_Frozen):
    """Whole days: `start` inclusive, `end` exclusive (as Cost Explorer counts them)."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end <= self.start:
            raise ValueError(f"a date range must end after it starts ({self.start}..{self.end})")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @classmethod
    def month_of(cls, day: date) -> DateRange:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return cls(start=start, end=end)

    @classmethod
    def trailing_days(cls, days: int, *, before: date) -> DateRange:
        return cls(start=before - timedelta(days=days), end=before)

    def from_day(self, day: date) -> DateRange:
        """The part of this range from `day` on (the range itself if it starts later)."""
        return DateRange(start=max(self.start, day), end=self.end)


class CostQuery(_Frozen):
    period: DateRange
    granularity: Granularity
    filter_tag: TagFilter | None = None
    group_by: str | None = None
    then_by: str | None = None
    """A second grouping within `group_by` (Cost Explorer allows two): SERVICE or a tag key.
    The budget check asks once for every team, grouped by the team tag, then by service."""
    metric: CostMetric = CostMetric.UNBLENDED

    @property
    def groups_by_tag(self) -> bool:
        return self.group_by is not None and self.group_by != SERVICE

    @property
    def tag_keys(self) -> frozenset[str]:
        """Tag keys the answer depends on (each must be activated for cost allocation)."""
        keys = {self.filter_tag.key} if self.filter_tag else set()
        if self.groups_by_tag and self.group_by is not None:
            keys.add(self.group_by)
        return frozenset(keys)


class CostGroup(_Frozen):
    """One group of a time bucket: a tag value ("" = untagged) or a service name."""

    key: str
    amount: Decimal
    detail: str = ""
    """With a second grouping (`CostQuery.then_by`), the group within `key`."""


class CostBucket(_Frozen):
    period: DateRange
    total: Decimal
    groups: tuple[CostGroup, ...] = ()
    estimated: bool = False


class CostReport(_Frozen):
    query: CostQuery
    currency: str
    buckets: tuple[CostBucket, ...]
    requests: int
    """GetCostAndUsage calls it took (one per page)."""

    @property
    def total(self) -> Decimal:
        return sum((bucket.total for bucket in self.buckets), Decimal(0))

    @property
    def estimated(self) -> bool:
        return any(bucket.estimated for bucket in self.buckets)

    def by_group(self) -> dict[str, Decimal]:
        """Each group's amount over the whole period, largest first."""
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for bucket in self.buckets:
            for group in bucket.groups:
                sums[group.key] += group.amount
        return dict(sorted(sums.items(), key=lambda item: (-item[1], item[0])))

    def split(self) -> dict[str, CostReport]:
        """A report grouped by a tag, then by something else, as one report per tag value:
        each as the same query filtered by that value and grouped by the second key would
        have answered (the budget check's per-team figures from its one query)."""
        if not self.query.groups_by_tag or self.query.group_by is None:
            raise ValueError("only a report grouped by a tag can be split by its values")
        values = sorted({g.key for b in self.buckets for g in b.groups})
        parts: dict[str, CostReport] = {}
        for value in values:
            query = self.query.model_copy(
                update={
                    "filter_tag": TagFilter(self.query.group_by, value),
                    "group_by": self.query.then_by,
                    "then_by": None,
                }
            )
            buckets = []
            for bucket in self.buckets:
                mine = [g for g in bucket.groups if g.key == value]
                buckets.append(
                    CostBucket(
                        period=bucket.period,
                        total=sum((g.amount for g in mine), Decimal(0)),
                        groups=tuple(
                            CostGroup(key=g.detail, amount=g.amount)
                            for g in mine
                            if self.query.then_by is not None
                        ),
                        estimated=bucket.estimated,
                    )
                )
            parts[value] = CostReport(
                query=query, currency=self.currency, buckets=tuple(buckets), requests=0
            )
        return parts

    def has_tagged_cost(self) -> bool:
        """Whether any cost is attributed to a tag value (false for an unactivated tag)."""
        if self.query.groups_by_tag:
            return any(g.key != "" and g.amount != 0 for b in self.buckets for g in b.groups)
        return self.total != 0


class ForecastMethod(StrEnum):
    COST_EXPLORER = "cost-explorer"
    LINEAR = "linear"


class Forecast(_Frozen):
    period: DateRange
    """The days forecast: from today (UTC) to the end of the period asked about."""
    currency: str
    amount: Decimal
    method: ForecastMethod
    lower: Decimal | None = None
    upper: Decimal | None = None
    prediction_interval: int | None = None
    """Cost Explorer's confidence (percent) that the amount lies within lower..upper."""
    basis: DateRange | None = None
    basis_days: int | None = None
    """For a linear projection: the days of actual cost it averages."""
    fallback_reason: str | None = None

    def explanation(self) -> str:
        """How the figure was made, in words for a person."""
        if self.method is ForecastMethod.COST_EXPLORER:
            if self.prediction_interval is not None:
                return f"Cost Explorer forecast ({self.prediction_interval}% prediction interval)"
            return "Cost Explorer forecast"
        days = self.basis_days or 0
        text = f"linear projection of the average daily cost over the last {days} day{'s' if days != 1 else ''}"
        if self.fallback_reason:
            text += f"; Cost Explorer's forecast is unavailable ({self.fallback_reason})"
        return text
