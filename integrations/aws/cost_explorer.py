"""Cost Explorer gateway: cost and usage reports and forecasts for the cost capability.

Every GetCostAndUsage page is a billed request (USD 0.01 each), so callers should cache
reports rather than ask twice.

Tags that are not activated for cost allocation do not make Cost Explorer fail: it answers
with every cost under the empty tag value ("team$") or with nothing at all. So when a tag
query finds no tagged cost, the gateway asks ListCostAllocationTags whether the key is
active, and only then says "tag X is not activated". If that look-up itself fails (the
role may lack ce:ListCostAllocationTags, or the endpoint may not implement it), the empty
report stands, the failure is logged once in one line, and the look-up is not tried again for
an hour (`TAG_LOOKUP_RETRY`), so an unavailable API costs neither time nor log noise.

Forecasts come from GetCostForecast, one request each, nothing more: when Cost Explorer
cannot forecast (DataUnavailableException with too little history; HTTP 500 from endpoints
that do not implement the call, such as moto) the error goes to the caller, which projects
from the report it already holds rather than pay for another query.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

from core.clock import Clock
from integrations.aws.cost_types import (
    CostMetric,
    CostQuery,
    CostReport,
    DateRange,
    Forecast,
    Granularity,
    TagFilter,
)
from integrations.aws.cost_wire import (
    cost_and_usage_request,
    cost_forecast_request,
    merge_pages,
    parse_forecast,
)
from integrations.aws.errors import (
    AwsCall,
    AwsUnexpectedResponse,
    TagNotActivated,
)
from integrations.aws.session import AwsClients

log = logging.getLogger(__name__)

T = TypeVar("T")

GET_COST_AND_USAGE = AwsCall("ce", "GetCostAndUsage")
GET_COST_FORECAST = AwsCall("ce", "GetCostForecast")
LIST_COST_ALLOCATION_TAGS = AwsCall("ce", "ListCostAllocationTags")


class CostSource(Protocol):
    """What the cost capability needs from a cost backend."""

    async def cost_and_usage(
        self,
        period: DateRange,
        granularity: Granularity,
        *,
        filter_tag: TagFilter | tuple[str, str] | None = None,
        group_by: str | None = None,
        metric: CostMetric = CostMetric.UNBLENDED,
    ) -> CostReport: ...

    async def forecast(
        self,
        period: DateRange,
        *,
        filter_tag: TagFilter | tuple[str, str] | None = None,
        metric: CostMetric = CostMetric.UNBLENDED,
    ) -> Forecast:
        """Cost Explorer's forecast of the rest of `period` (one request); raises when it
        cannot forecast (CostDataUnavailable, AwsServerError, ...)."""
        ...


TAG_LOOKUP_RETRY = timedelta(hours=1)


class CostExplorerGateway:
    def __init__(
        self,
        clients: AwsClients,
        clock: Clock,
        *,
        max_pages: int = 100,
    ) -> None:
        self._clients = clients
        self._clock = clock
        self._max_pages = max_pages
        self._requests = 0
        self._requests_lock = threading.Lock()
        self._tag_lookup_unavailable_until: datetime | None = None

    async def warm(self) -> None:
        """Build the client off the event loop before the first command needs it: creating a
        boto3 client takes about a tenth of a second of CPU (and may resolve credentials)."""
        try:
            await asyncio.to_thread(self._clients.cost_explorer)
        except Exception as exc:  # the first real call reports the problem to its user
            log.info("could not prepare the Cost Explorer client: %s", type(exc).__name__)

    @property
    def requests_made(self) -> int:
        """Cost Explorer API calls made so far (each billed), not counting retries."""
        with self._requests_lock:
            return self._requests

    async def cost_and_usage(
        self,
        period: DateRange,
        granularity: Granularity,
        *,
        filter_tag: TagFilter | tuple[str, str] | None = None,
        group_by: str | None = None,
        metric: CostMetric = CostMetric.UNBLENDED,
    ) -> CostReport:
        query = CostQuery(
            period=period,
            granularity=granularity,
            filter_tag=TagFilter(*filter_tag) if filter_tag is not None else None,
            group_by=group_by,
            metric=metric,
        )
        report = merge_pages(query, await self._all_pages(query))
        if query.tag_keys and not report.has_tagged_cost():
            await self._require_activated(query.tag_keys)
        return report

    async def forecast(
        self,
        period: DateRange,
        *,
        filter_tag: TagFilter | tuple[str, str] | None = None,
        metric: CostMetric = CostMetric.UNBLENDED,
    ) -> Forecast:
        today = self._today()
        if period.end <= today:
            raise ValueError(f"nothing left to forecast: {period.start}..{period.end} is past")
        remaining = period.from_day(today)
        tag = TagFilter(*filter_tag) if filter_tag is not None else None
        request = cost_forecast_request(remaining, tag, metric)
        response = await self._call(
            GET_COST_FORECAST,
            lambda: self._clients.cost_explorer().get_cost_forecast(**request),
        )
        return parse_forecast(remaining, response)

    async def _all_pages(self, query: CostQuery) -> list[Mapping[str, Any]]:
        pages: list[Mapping[str, Any]] = []
        seen_tokens: set[str] = set()
        token: str | None = None
        while True:
            request = cost_and_usage_request(query, token)
            page = await self._call(GET_COST_AND_USAGE, partial(self._fetch_page, request))
            pages.append(page)
            token = page.get("NextPageToken") or None
            if token is None:
                return pages
            if token in seen_tokens or len(pages) >= self._max_pages:
                # A token seen before would loop forever; a runaway page count costs money.
                raise AwsUnexpectedResponse(
                    f"Cost Explorer kept paginating after {len(pages)} pages; query a shorter period"
                )
            seen_tokens.add(token)

    def _fetch_page(self, request: dict[str, Any]) -> Mapping[str, Any]:
        return self._clients.cost_explorer().get_cost_and_usage(**request)

    async def _require_activated(self, tag_keys: frozenset[str]) -> None:
        keys = sorted(tag_keys)
        now = self._clock.now()
        if self._tag_lookup_unavailable_until and now < self._tag_lookup_unavailable_until:
            return
        try:
            response = await self._call(
                LIST_COST_ALLOCATION_TAGS,
                lambda: self._clients.cost_explorer_single_attempt().list_cost_allocation_tags(
                    TagKeys=keys
                ),
            )
        except Exception as exc:
            self._tag_lookup_unavailable_until = now + TAG_LOOKUP_RETRY
            log.warning(
                "ListCostAllocationTags is unavailable (%s): an empty cost report cannot tell "
                "an inactive tag from no cost; next try in %d minutes",
                type(exc).__name__,
                TAG_LOOKUP_RETRY.total_seconds() // 60,
            )
            return
        self._tag_lookup_unavailable_until = None
        active = {
            str(tag.get("TagKey"))
            for tag in response.get("CostAllocationTags", [])
            if tag.get("Status") == "Active"
        }
        for key in keys:
            if key not in active:
                raise TagNotActivated(key)

    async def _call(self, call: AwsCall, fn: Callable[[], T]) -> T:
        with self._requests_lock:
            self._requests += 1
        return await self._clients.run(call, fn)

    def _today(self) -> date:
        # Cost Explorer's days are UTC days.
        return self._clock.now().date()
