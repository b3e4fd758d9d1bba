"""The error-budget deploy gate: the deploy capability asks it before a prod deploy.

It never blocks on missing knowledge: no SLO for the service and environment, no data, or an
unavailable Prometheus all answer None, and the deploy says the budget could not be checked.
"""

from __future__ import annotations

import logging

from commands.slo.budget import SloFigures
from commands.slo.service import SloService
from commands.slo.views import percent
from core.deploy_gate import BudgetVerdict
from core.durations import format_duration
from integrations.prometheus import PrometheusUnavailable, PromQLError

log = logging.getLogger(__name__)


def _line(item: SloFigures) -> str:
    assert item.sli is not None and item.budget_remaining is not None
    assert item.budget_minutes is not None
    slo = item.ref.slo
    return (
        f"{item.ref.key}: SLI {percent(item.sli)} over {format_duration(slo.window)} "
        f"(Prometheus) against {slo.objective:g}%, error budget "
        f"left {item.budget_remaining * 100:.0f}% ({item.budget_minutes:.1f} of "
        f"{item.budget_total_minutes:.1f} min)"
    )


class SloBudgetGate:
    def __init__(self, slos: SloService) -> None:
        self.slos = slos

    async def check(self, service: str, environment: str) -> BudgetVerdict | None:
        refs = [r for r in self.slos.refs([service]) if r.slo.environment == environment]
        if not refs:
            return None
        try:
            items = await self.slos.evaluate(refs, self.slos.clock.now(), trend=False)
        except (PrometheusUnavailable, PromQLError) as exc:
            log.warning("budget gate for %s/%s: %s", service, environment, exc)
            return None
        measured = [i for i in items if i.budget_remaining is not None]
        if not measured:
            return None
        exhausted = [i for i in measured if (i.budget_remaining or 0) <= 0]
        shown = exhausted or sorted(measured, key=lambda i: i.budget_remaining or 0)[:1]
        # The gate's line says "exhausted" itself: the summary only names the SLOs.
        summary = "; ".join(_line(i) for i in shown)
        return BudgetVerdict(exhausted=bool(exhausted), summary=summary)
