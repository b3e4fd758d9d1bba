"""SLO figures exact and hard to misread: thresholds compared exactly and strictly, queries
that return several series refused (and caught by `forgebot config check`), and the SLI,
budget and burn rates of the real Prometheus compared with references computed here from the
generated counters."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cli import main
from commands.slo.budget import Severity, Status, alert_for, figures
from commands.slo.queries import Counts, SloRef
from commands.slo.service import SloService
from core.auth import Authorizer, MembershipCache
from core.catalog import Catalog, SloAlerting, parse_catalog
from core.clock import ManualClock
from integrations.prometheus import PrometheusClient
from integrations.sandbox.prometheus_server import RunningPrometheus
from tests.fixtures.prometheus import SLO_AT, with_slo_services

BASE = """\
platform_team: platform
teams:
  - name: platform
    channel: C0PLAT
    members: [U0PLAT]
environments:
  - {name: prod, tier: prod, cluster: c1}
services:
  - name: api
    team: platform
    image: registry.example.com/api
    slos:
"""
H, M = timedelta(hours=1), timedelta(minutes=1)


def _ref(objective: str = "99.9") -> SloRef:
    catalog = parse_catalog(
        BASE + f"      - {{name: a, objective: {objective}, ratio: {{bad: y, total: z}}}}\n"
    )
    service = catalog.service("api")
    assert service is not None
    return SloRef("api", service.slos[0])


def test_objectives_and_factors_are_exact_decimals() -> None:
    ref = _ref("99.9")
    assert ref.slo.objective == Decimal("99.9") and ref.slo.budget_share == Fraction(1, 1000)
    assert _ref("99").slo.objective == Decimal(99)
    assert SloAlerting().page[0].burn == Decimal("14.4")


def test_exactly_at_a_factor_does_not_fire() -> None:
    ref = _ref("99.9")
    # 144 bad of 10,000 with 0.1% allowed is a burn of exactly 14.4x (float division says
    # 14.400000000000002x): the workbook's condition is strict, so it does not page.
    at_factor = {H: Counts(144, 10_000), 5 * M: Counts(144, 10_000)}
    item = figures(ref, Counts(0, 10**9), at_factor, [], SloAlerting())
    assert item.alert is None and item.status is Status.OK
    above = {H: Counts(145, 10_000), 5 * M: Counts(145, 10_000)}
    paged = figures(ref, Counts(0, 10**9), above, [], SloAlerting())
    assert paged.alert is not None and paged.alert.severity is Severity.PAGE
    # Spending exactly on pace (1x over 3 days and 6 hours) opens no ticket.
    on_pace = {3 * 24 * H: Counts(1, 1000), 6 * H: Counts(3, 3000)}
    assert alert_for({w: Fraction(1) for w in on_pace}, SloAlerting()) is None
    assert figures(ref, Counts(0, 10**9), on_pace, [], SloAlerting()).alert is None
    # Exactly spent is spent; a hair under a quarter left is a warning.
    assert figures(ref, Counts(20, 20_000), {}, [], SloAlerting()).status is Status.CRITICAL
    assert figures(ref, Counts(5, 20_000), {}, [], SloAlerting()).status is Status.OK
    assert figures(ref, Counts(15.0001, 20_000), {}, [], SloAlerting()).status is Status.WARNING


@settings(deadline=None)  # the machine may be busy; the figures, not the time, are tested
@given(
    objective=st.decimals(min_value=Decimal("90"), max_value=Decimal("99.999"), places=3),
    factor=st.decimals(min_value=Decimal("0.5"), max_value=Decimal("50"), places=2),
    total=st.integers(min_value=1, max_value=10**9),
    bad=st.integers(min_value=0, max_value=10**9),
)
def test_alert_decisions_against_integer_arithmetic(
    objective: Decimal, factor: Decimal, total: int, bad: int
) -> None:
    bad = min(bad, total)
    ref = _ref(str(objective))
    condition = {"long": "1h", "short": "5m", "burn": str(factor)}
    alerting = SloAlerting.model_validate({"page": [condition], "ticket": []})
    item = figures(
        ref, Counts(0, 1), {H: Counts(bad, total), 5 * M: Counts(bad, total)}, [], alerting
    )
    # burn > factor  <=>  bad / total > factor * (100 - objective) / 100, in integers:
    scale = 10**5
    allowed = int((100 - objective) * scale)
    fires = bad * 100 * scale * 100 > int(factor * 100) * allowed * total
    assert (item.alert is not None) is fires


# --- several series: refused, and caught by config check, against the real Prometheus ----------

SPLIT_TOTAL = {
    "name": "split",
    "team": "payments",
    "image": "registry.example.com/payments/split",
    "slos": [
        {
            "name": "availability",
            "objective": 99.9,
            "ratio": {
                "bad": 'sum(increase(http_requests_total{service="healthy",code=~"5.."}[$window]))',
                # by code: one series per code, the mistake the issue reports
                "total": 'sum by (code) (increase(http_requests_total{service="healthy"}[$window]))',
            },
        }
    ],
}


async def _evaluate(
    prometheus_server: RunningPrometheus, catalog: Catalog, service: str
) -> list[Any]:
    async def members(_: str) -> list[str]:
        return []

    client = PrometheusClient(prometheus_server.url)
    slos = SloService(
        catalog, ManualClock(SLO_AT), Authorizer(catalog, MembershipCache(fetch=members)), client
    )
    try:
        return await slos.evaluate(slos.refs([service]), SLO_AT, deadline=30)
    finally:
        await client.close()


async def test_a_query_with_several_series_is_refused(
    prometheus_server: RunningPrometheus, catalog: Catalog
) -> None:
    (item,) = await _evaluate(prometheus_server, with_slo_services(catalog, [SPLIT_TOTAL]), "split")
    assert item.status is Status.ERROR and item.sli is None and item.budget_remaining is None
    assert "`total` query returns 2 series" in item.note and "sum(" in item.note


def test_config_check_catches_several_series(
    prometheus_server: RunningPrometheus,
    catalog: Catalog,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = with_slo_services(catalog, [SPLIT_TOTAL]).model_dump(mode="json")
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("PROMETHEUS_URL", prometheus_server.url)
    assert main(["config", "check", "--catalog", str(path)]) == 2
    err = capsys.readouterr().err
    assert "1 SLO query problem" in err
    assert (
        "service split: SLO availability: `total` query: the `total` query returns 2 series" in err
    )


# --- SLI, budget and burn on the real Prometheus against the generated counters -----------------

# (service, SLI) pairs whose counters are all well above zero at every window's start:
# Prometheus's `increase` does not extrapolate a counter below zero, so a counter that starts
# at 0 (recovered's errors) is extrapolated differently from its total, and a ratio of two
# `increase`s is then not the ratio of the raw deltas this reference computes.
MEASURED = [
    ("healthy", "availability"),
    ("healthy", "latency"),
    ("burned", "availability"),
    ("burned", "latency"),
    ("burning", "availability"),
    ("burning", "latency"),
    ("recovered", "latency"),
]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    measured=st.sampled_from(MEASURED),
    objective=st.decimals(min_value=Decimal("95"), max_value=Decimal("99.99"), places=2),
    window=st.sampled_from(
        [timedelta(days=1), timedelta(days=3), timedelta(days=7), timedelta(days=30)]
    ),
    minutes_back=st.integers(min_value=0, max_value=24 * 60),
)
def test_sli_budget_and_burn_match_the_counters(
    prometheus_server: RunningPrometheus,
    catalog: Catalog,
    measured: tuple[str, str],
    objective: Decimal,
    window: timedelta,
    minutes_back: int,
) -> None:
    service, kind = measured
    data = with_slo_services(catalog).model_dump(mode="json")
    entry = next(s for s in data["services"] if s["name"] == service)
    slo = next(s for s in entry["slos"] if s["name"] == kind)
    slo.update(objective=str(objective), window=f"{window.days}d")
    entry["slos"] = [slo]
    varied = Catalog.model_validate(data)
    at = SLO_AT - timedelta(minutes=minutes_back)

    async def run() -> Any:
        async def members(_: str) -> list[str]:
            return []

        client = PrometheusClient(prometheus_server.url)
        slos = SloService(
            varied, ManualClock(at), Authorizer(varied, MembershipCache(fetch=members)), client
        )
        try:
            return await slos.evaluate(slos.refs([service]), at, trend=False, deadline=30)
        finally:
            await client.close()

    (item,) = asyncio.run(run())
    counters = prometheus_server.data[service]
    share = (100 - Fraction(objective)) / 100

    def bad_total(w: timedelta) -> tuple[int, int]:
        errors, slow, total = counters.delta(at - w, at)
        return (errors if kind == "availability" else slow), total

    bad, total = bad_total(window)
    if total == 0:
        assert item.status is Status.NO_DATA
        return
    assert item.sli == pytest.approx(float(1 - Fraction(bad, total)), abs=1e-9)
    assert item.budget_remaining == pytest.approx(float(1 - Fraction(bad, total) / share), abs=1e-6)
    for w, burn in item.burn.items():
        b, t = bad_total(w)
        if t == 0:
            assert burn is None
        else:
            assert burn == pytest.approx(float(Fraction(b, t) / share), rel=1e-9, abs=1e-9)
