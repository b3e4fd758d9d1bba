"""Cost Explorer's wire format: typed queries to request parameters, response pages to reports.

Pure functions, so the sandbox seeds and the gateway agree on the format by construction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.aws.cost_types import (
    DEFAULT_CURRENCY,
    SERVICE,
    CostBucket,
    CostGroup,
    CostMetric,
    CostQuery,
    CostReport,
    DateRange,
    Forecast,
    ForecastMethod,
    TagFilter,
)
from integrations.aws.errors import AwsUnexpectedResponse

PREDICTION_INTERVAL = 80


def tag_expression(tag: TagFilter) -> dict[str, Any]:
    if tag.value == "":
        return {"Tags": {"Key": tag.key, "MatchOptions": ["ABSENT"]}}
    return {"Tags": {"Key": tag.key, "Values": [tag.value], "MatchOptions": ["EQUALS"]}}


def time_period(period: DateRange) -> dict[str, str]:
    return {"Start": period.start.isoformat(), "End": period.end.isoformat()}


def cost_and_usage_request(query: CostQuery, page_token: str | None = None) -> dict[str, Any]:
    """Keyword arguments for `get_cost_and_usage`, built in a fixed order so the same query
    always serialises to the same body."""
    request: dict[str, Any] = {
        "TimePeriod": time_period(query.period),
        "Granularity": query.granularity.value,
        "Metrics": [query.metric.usage_name],
    }
    if query.filter_tag is not None:
        request["Filter"] = tag_expression(query.filter_tag)
    groups = [g for g in (query.group_by, query.then_by) if g is not None]
    if groups:
        request["GroupBy"] = [group_definition(g) for g in groups]
    if page_token is not None:
        request["NextPageToken"] = page_token
    return request


def group_definition(group_by: str) -> dict[str, str]:
    """One entry of GetCostAndUsage's `GroupBy`: the SERVICE dimension, or a tag key."""
    if group_by == SERVICE:
        return {"Type": "DIMENSION", "Key": SERVICE}
    return {"Type": "TAG", "Key": group_by}


def cost_forecast_request(
    period: DateRange, filter_tag: TagFilter | None, metric: CostMetric = CostMetric.UNBLENDED
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TimePeriod": time_period(period),
        "Metric": metric.forecast_name,
        "Granularity": "MONTHLY",
        "PredictionIntervalLevel": PREDICTION_INTERVAL,
    }
    if filter_tag is not None:
        request["Filter"] = tag_expression(filter_tag)
    return request


def group_label(query: CostQuery, keys: Sequence[str]) -> str:
    """A group's name: the tag value for tag groups ("team$payments" -> "payments", and
    "team$" -> "" for untagged cost), the service name for SERVICE groups."""
    return _label(query.group_by, keys[0] if keys else "")


def detail_label(query: CostQuery, keys: Sequence[str]) -> str:
    """The second key's name, with a second grouping (`CostQuery.then_by`); else ""."""
    if query.then_by is None:
        return ""
    return _label(query.then_by, keys[1] if len(keys) > 1 else "")


def _label(group_by: str | None, key: str) -> str:
    if group_by is not None and group_by != SERVICE:
        prefix, separator, value = key.partition("$")
        return value if separator else prefix
    return key


class _BucketTotals:
    def __init__(self) -> None:
        self.total: Decimal | None = None
        self.groups: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.estimated = False


def merge_pages(query: CostQuery, pages: Sequence[Mapping[str, Any]]) -> CostReport:
    """One report from every page. With grouping, one day's groups may be split over pages;
    they are joined by time period, and a group seen twice is summed."""
    buckets: dict[tuple[str, str], _BucketTotals] = {}
    currencies: set[str] = set()
    name = query.metric.usage_name
    for page in pages:
        for result in page.get("ResultsByTime", []):
            period = result.get("TimePeriod", {})
            key = (str(period.get("Start")), str(period.get("End")))
            bucket = buckets.setdefault(key, _BucketTotals())
            bucket.estimated = bucket.estimated or bool(result.get("Estimated", False))
            total = result.get("Total", {}).get(name)
            if total is not None:
                currencies.add(_unit(total))
                bucket.total = (bucket.total or Decimal(0)) + _amount(total)
            for group in result.get("Groups", []):
                metric = group.get("Metrics", {}).get(name)
                if metric is None:
                    continue
                currencies.add(_unit(metric))
                keys = group.get("Keys", [])
                bucket.groups[(group_label(query, keys), detail_label(query, keys))] += _amount(
                    metric
                )
    if len(currencies) > 1:
        raise AwsUnexpectedResponse(
            f"Cost Explorer answered in more than one currency ({', '.join(sorted(currencies))})"
        )
    return CostReport(
        query=query,
        currency=currencies.pop() if currencies else DEFAULT_CURRENCY,
        buckets=tuple(_bucket(key, totals) for key, totals in sorted(buckets.items())),
        requests=len(pages),
    )


def _bucket(key: tuple[str, str], totals: _BucketTotals) -> CostBucket:
    groups = tuple(
        CostGroup(key=name, amount=amount, detail=detail)
        for (name, detail), amount in sorted(
            totals.groups.items(), key=lambda item: (-item[1], item[0])
        )
    )
    # Cost Explorer leaves Total empty when grouping: the groups are the whole.
    total = (
        totals.total if totals.total is not None else sum((g.amount for g in groups), Decimal(0))
    )
    return CostBucket(
        period=DateRange(start=date.fromisoformat(key[0]), end=date.fromisoformat(key[1])),
        total=total,
        groups=groups,
        estimated=totals.estimated,
    )


def parse_forecast(period: DateRange, response: Mapping[str, Any]) -> Forecast:
    total = response.get("Total")
    if total is None:
        raise AwsUnexpectedResponse("Cost Explorer's forecast came without a total")
    lower = _sum_field(response.get("ForecastResultsByTime", []), "PredictionIntervalLowerBound")
    upper = _sum_field(response.get("ForecastResultsByTime", []), "PredictionIntervalUpperBound")
    return Forecast(
        period=period,
        currency=_unit(total),
        amount=_amount(total),
        method=ForecastMethod.COST_EXPLORER,
        lower=lower,
        upper=upper,
        prediction_interval=PREDICTION_INTERVAL if lower is not None else None,
    )


def _sum_field(results: Iterable[Mapping[str, Any]], field: str) -> Decimal | None:
    values = [result[field] for result in results if field in result]
    if not values:
        return None
    return sum((_decimal(value) for value in values), Decimal(0))


def _amount(metric: Mapping[str, Any]) -> Decimal:
    return _decimal(metric.get("Amount", "0"))


def _unit(metric: Mapping[str, Any]) -> str:
    return str(metric.get("Unit") or DEFAULT_CURRENCY)


def _decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise AwsUnexpectedResponse(
            f"Cost Explorer sent an amount that is not a number: {value!r}"
        ) from exc
