"""`forgebot config check`: run every SLO's queries once against Prometheus, report errors.

Each part (`good`/`bad` and `total`) is evaluated over the SLO's own window, where its series
have data: a query Prometheus refuses is reported, and so is one that returns several series
(an SLI part must be one number; `/forge slo` refuses such a query too, see queries.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from commands.slo.queries import SloRef, parts, several_series
from core.catalog import Catalog
from integrations.prometheus import PrometheusGateway, PrometheusUnavailable, PromQLError


async def check_slo_queries(
    catalog: Catalog, prometheus: PrometheusGateway, at: datetime
) -> list[str]:
    """One line per broken SLO query; raises PrometheusUnavailable if it cannot be reached."""
    refs = [SloRef(s.name, slo) for s in catalog.services for slo in s.slos]

    async def one(ref: SloRef, part: str, query: str) -> str | None:
        where = f"service {ref.service}: SLO {ref.slo.name}: `{part}` query"
        try:
            samples = await prometheus.instant(query, at)
        except PromQLError as exc:
            return f"{where}: {exc}"
        if len(samples) > 1:
            return f"{where}: {several_series(part, len(samples))}"
        return None

    found = await asyncio.gather(
        *(
            one(ref, part, query)
            for ref in refs
            for part, query in parts(ref.slo, ref.slo.window).items()
        )
    )
    return [line for line in found if line is not None]


__all__ = ["PrometheusUnavailable", "check_slo_queries"]
