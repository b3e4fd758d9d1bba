"""`/forge slo`: which SLOs a request is about, and their figures from Prometheus.

All windows' queries for all the SLOs asked about are issued at once (the gateway bounds how
many are in flight) and the whole evaluation has a deadline, so a slow Prometheus gives
"SLO data unavailable" well within 3 seconds of the ack instead of a hanging command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from commands.slo import queries
from commands.slo.budget import REPORT_WINDOWS, SloFigures, figures, worst_first
from commands.slo.queries import Counts, SloRef
from core.auth import Actor, Authorizer
from core.block_limits import escape
from core.catalog import Catalog
from core.clock import Clock
from core.errors import NotFound
from core.scopes import service_or_team
from integrations.prometheus import PrometheusGateway, PrometheusUnavailable, PromQLError

USAGE = "`/forge slo [SERVICE|TEAM]`"
DEADLINE_SECONDS = 2.5


class PrometheusNotConfigured(PrometheusUnavailable):
    """No PROMETHEUS_URL: a setting is missing, so trying again in a minute will not help."""

    retryable = False


@dataclass(frozen=True)
class SloQuery:
    scope: str
    refs: list[SloRef]


@dataclass(frozen=True)
class SloReport:
    scope: str
    at: datetime
    items: list[SloFigures]


@dataclass
class SloService:
    catalog: Catalog
    clock: Clock
    auth: Authorizer
    prometheus: PrometheusGateway | None
    deadline: float = DEADLINE_SECONDS

    def refs(self, services: Sequence[str]) -> list[SloRef]:
        wanted = set(services)
        return [
            SloRef(s.name, slo) for s in self.catalog.services if s.name in wanted for slo in s.slos
        ]

    def parse(self, actor: Actor, args: str) -> SloQuery:
        scope = service_or_team(self.catalog, self.auth, actor, args.split(), USAGE)
        refs = self.refs(scope.services)
        if not refs and scope.is_team:
            raise NotFound(
                f"No service of team `{escape(scope.name)}` has an SLO in the catalog yet."
            )
        if not refs:
            raise NotFound(
                f"`{escape(scope.name)}` has no SLOs in the catalog yet (add them under its `slos:`)."
            )
        return SloQuery(scope.title, refs)

    async def report(self, query: SloQuery) -> SloReport:
        at = self.clock.now()
        return SloReport(query.scope, at, worst_first(await self.evaluate(query.refs, at)))

    async def evaluate(
        self,
        refs: Sequence[SloRef],
        at: datetime,
        *,
        trend: bool = True,
        deadline: float | None = None,
    ) -> list[SloFigures]:
        """Figures for each ref at `at`; raises PrometheusUnavailable past the deadline (a
        person is waiting by default; the alert job, nobody, so it gives Prometheus longer)."""
        prometheus = self.prometheus
        if prometheus is None:
            raise PrometheusNotConfigured(
                "SLOs are not set up here: forgebot has no Prometheus to ask (its "
                "PROMETHEUS_URL setting is empty); the platform team can configure it"
            )
        try:
            async with asyncio.timeout(deadline or self.deadline):
                return await self._evaluate(prometheus, refs, at, trend)
        except TimeoutError:
            raise PrometheusUnavailable(
                "SLO data unavailable: Prometheus did not answer in time"
            ) from None

    def _burn_windows(self) -> list[timedelta]:
        alerting = self.catalog.slo_alerting
        windows = set(REPORT_WINDOWS)
        for condition in [*alerting.page, *alerting.ticket]:
            windows |= {condition.long, condition.short}
        return sorted(windows)

    async def _evaluate(
        self, prometheus: PrometheusGateway, refs: Sequence[SloRef], at: datetime, trend: bool
    ) -> list[SloFigures]:
        burn_windows = self._burn_windows()
        by_slo_window: dict[timedelta, list[int]] = {}
        for i, ref in enumerate(refs):
            by_slo_window.setdefault(ref.slo.window, []).append(i)
        slo_windows = list(by_slo_window)
        burn_results, slo_results, trend_results = await asyncio.gather(
            asyncio.gather(*(queries.window_counts(prometheus, refs, w, at) for w in burn_windows)),
            asyncio.gather(
                *(
                    queries.window_counts(prometheus, [refs[i] for i in by_slo_window[w]], w, at)
                    for w in slo_windows
                )
            ),
            asyncio.gather(
                *(
                    queries.daily_bad(prometheus, [refs[i] for i in by_slo_window[w]], w, at)
                    for w in (slo_windows if trend else [])
                )
            ),
        )
        window_counts: dict[int, Counts | PromQLError] = {}
        daily: dict[int, list[float | None]] = {}
        for n, w in enumerate(slo_windows):
            for k, i in enumerate(by_slo_window[w]):
                window_counts[i] = slo_results[n][k]
                daily[i] = trend_results[n][k] if trend else []
        return [
            figures(
                ref,
                window_counts[i],
                {w: burn_results[n][i] for n, w in enumerate(burn_windows)},
                daily[i],
                self.catalog.slo_alerting,
            )
            for i, ref in enumerate(refs)
        ]
