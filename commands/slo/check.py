"""`forgebot config check`: run every SLO's queries once against Prometheus, report errors."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from bot.catalog import Catalog
from commands.slo.queries import SloRef, parts
from integrations.prometheus import PrometheusGateway, PrometheusUnavailable, PromQLError

CHECK_WINDOW = timedelta(minutes=5)


async def check_slo_queries(
    catalog: Catalog, prometheus: PrometheusGateway, at: datetime
) -> list[str]:
    """One line per broken SLO query; raises PrometheusUnavailable if it cannot be reached."""
    refs = [SloRef(s.name, slo) for s in catalog.services for slo in s.slos]

    async def one(ref: SloRef, part: str, query: str) -> str | None:
        try:
            await prometheus.instant(query, at)
        except PromQLError as exc:
            return f"service {ref.service}: SLO {ref.slo.name}: `{part}` query: {exc}"
        return None

    found = await asyncio.gather(
        *(
            one(ref, part, query)
            for ref in refs
            for part, query in parts(ref.slo, CHECK_WINDOW).items()
        )
    )
    return [line for line in found if line is not None]


__all__ = ["PrometheusUnavailable", "check_slo_queries"]
