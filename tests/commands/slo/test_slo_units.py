"""The SLO catalog model, the budget arithmetic, the trend bars, the alert-episode guards (on
SQLite and PostgreSQL), the deploy gate and `forgebot config check`, each on its own."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from commands.slo.budget import Severity, Status, alert_for, figures
from commands.slo.gate import SloBudgetGate
from commands.slo.queries import Counts, SloRef, parts
from commands.slo.service import SloReport, SloService
from commands.slo.views import slo_report, sparkline
from core.auth import Authorizer, MembershipCache
from core.catalog import Catalog, CatalogError, SloAlerting, load_catalog, parse_catalog
from core.clock import ManualClock
from integrations.prometheus import PrometheusClient
from integrations.sandbox.prometheus_server import RunningPrometheus
from storage import slo_alerts as repo
from storage.db import Database
from storage.slo_alerts import SloAlertEpisode
from tests.fixtures.prometheus import SLO_AT, with_slo_services

EXAMPLE = Path(__file__).parents[3] / "catalog.example.yaml"
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


@pytest.mark.parametrize(
    ("slo", "fragment"),
    [
        (
            "      - {name: a, objective: 99.9, ratio: {good: x, bad: y, total: z}}",
            "exactly one of `good` or `bad`",
        ),
        ("      - {name: a, objective: 99.9}", "needs exactly one SLI"),
        ("      - {name: a, objective: 100, ratio: {bad: y, total: z}}", "less than 100"),
        (
            "      - {name: a, objective: 99, window: 30m, ratio: {bad: y, total: z}}",
            "shorter than 1h",
        ),
        (
            "      - {name: a, objective: 99, environment: moon, ratio: {bad: y, total: z}}",
            "environment “moon” is not defined",
        ),
        (
            "      - {name: a, objective: 99, latency: {metric: 'bad name', threshold: 0.3}}",
            "not a Prometheus metric name",
        ),
        (
            "      - {name: a, objective: 99, ratio: {bad: y, total: z}}\n"
            "      - {name: a, objective: 99, ratio: {bad: y, total: z}}",
            "SLO “a” is defined twice",
        ),
    ],
)
def test_bad_slos_are_reported_with_their_line(slo: str, fragment: str) -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(BASE + slo + "\n", "c.yaml")
    text = "\n".join(info.value.problems)
    assert fragment in text and text.startswith("c.yaml:"), text


def test_slo_defaults_and_queries() -> None:
    catalog = parse_catalog(
        BASE
        + "      - {name: a, objective: 99.5, ratio: {bad: 'errors_total{job=\"x\"}', total: 'req_total'}}\n"
        + "      - {name: b, objective: 99, latency: {metric: lat_seconds_bucket, selector: '{job=\"x\"}', threshold: 0.25}}\n"
        + "      - {name: c, objective: 99, ratio: {good: 'sum(rate(ok[$window]))', total: 'sum(rate(all[$window]))'}}\n"
    )
    service = catalog.service("api")
    assert service is not None
    a, b, c = service.slos
    assert a.window == timedelta(days=30) and a.environment == "prod"
    assert a.budget_fraction == pytest.approx(0.005)
    assert parts(a, timedelta(hours=1)) == {
        "bad": 'sum(increase(errors_total{job="x"}[1h]))',
        "total": "sum(increase(req_total[1h]))",
    }
    assert parts(b, timedelta(minutes=5)) == {
        "good": 'sum(increase(lat_seconds_bucket{job="x",le="0.25"}[5m]))',
        "total": 'sum(increase(lat_seconds_count{job="x"}[5m]))',
    }
    assert parts(c, timedelta(days=3))["good"] == "sum(rate(ok[3d]))"
    assert load_catalog(EXAMPLE).slo_alerting == SloAlerting()


def _ref(objective: float = 99.9) -> SloRef:
    catalog = parse_catalog(
        BASE + f"      - {{name: a, objective: {objective}, ratio: {{bad: y, total: z}}}}\n"
    )
    service = catalog.service("api")
    assert service is not None
    return SloRef("api", service.slos[0])


def test_budget_figures_and_status() -> None:
    ref = _ref()
    h = timedelta(hours=1)
    quiet = {h: Counts(0, 1000)}
    # 10 bad of 20,000 with 0.1% allowed: half the budget spent, 21.6 of 43.2 minutes left.
    half = figures(ref, Counts(10, 20_000), quiet, [0.0, 0.5], SloAlerting())
    assert half.status is Status.OK and half.sli == pytest.approx(0.9995)
    assert half.budget_remaining == pytest.approx(0.5)
    assert half.budget_minutes == pytest.approx(21.6)
    assert half.trend == [0.0, pytest.approx(0.025)]
    low = figures(ref, Counts(16, 20_000), quiet, [], SloAlerting())
    assert low.status is Status.WARNING, "under a quarter of the budget left"
    spent = figures(ref, Counts(30, 20_000), quiet, [], SloAlerting())
    assert spent.status is Status.CRITICAL and spent.budget_remaining == pytest.approx(-0.5)
    idle = figures(ref, Counts(0, 0), quiet, [], SloAlerting())
    assert idle.status is Status.NO_DATA and idle.sli is None and "no traffic" in idle.note
    absent = figures(ref, Counts(None, None), quiet, [], SloAlerting())
    assert absent.status is Status.NO_DATA and "no series" in absent.note


def test_multiwindow_conditions_need_both_windows() -> None:
    m = timedelta(minutes=1)
    h = timedelta(hours=1)
    burns: dict[timedelta, float | None] = {h: 20.0, 5 * m: 3.0}
    assert alert_for(burns, SloAlerting()) is None, "the short window has recovered"
    burns[5 * m] = 15.0
    page = alert_for(burns, SloAlerting())
    assert page is not None and page.severity is Severity.PAGE
    ticket = alert_for({24 * h: 3.5, 2 * h: 4.0, h: 4.0, 5 * m: 4.0}, SloAlerting())
    assert ticket is not None and ticket.severity is Severity.TICKET
    assert ticket.describe() == "burn rate over 3x for 1d and 2h"
    assert alert_for({h: None, 5 * m: None}, SloAlerting()) is None


def test_sparkline_heights_are_burn_rates() -> None:
    window = timedelta(days=30)
    day = 1 / 30  # one day spending a thirtieth of the budget is burn 1x
    assert sparkline([0.0, day, 2 * day, 40 * day, None], window) == "▁▂▃█·"


async def test_alert_episode_guards(database: Database) -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)

    def episode() -> SloAlertEpisode:
        return SloAlertEpisode(
            slo_key="api/a",
            service="api",
            environment="prod",
            severity="ticket",
            condition="c",
            started_at=now,
            channel="C1",
        )

    first, second = await asyncio.gather(
        database.run(lambda s: repo.open_episode(s, episode())),
        database.run(lambda s: repo.open_episode(s, episode())),
    )
    opened = first or second
    assert opened is not None and (first is None or second is None), "one open episode"
    assert opened.id is not None
    episode_id = opened.id
    assert not await database.run(lambda s: repo.claim_unposted(s, episode_id, now))
    later = now + timedelta(minutes=5)
    assert await database.run(lambda s: repo.claim_unposted(s, episode_id, later))
    assert not await database.run(lambda s: repo.claim_unposted(s, episode_id, later))
    assert await database.run(lambda s: repo.set_message(s, episode_id, "C1", "1.2"))
    assert not await database.run(lambda s: repo.set_message(s, episode_id, "C1", "9.9"))
    assert await database.run(lambda s: repo.escalate(s, episode_id, "page", "p"))
    assert not await database.run(lambda s: repo.escalate(s, episode_id, "page", "p"))
    assert await database.run(lambda s: repo.resolve(s, episode_id, later))
    assert not await database.run(lambda s: repo.resolve(s, episode_id, later))
    assert await database.run(repo.open_episodes) == []
    reopened = await database.run(lambda s: repo.open_episode(s, episode()))
    assert reopened is not None and reopened.id != episode_id, "a new episode after resolution"


async def test_budget_gate_against_real_data(
    prometheus_server: RunningPrometheus, catalog: Catalog
) -> None:
    slo_catalog = with_slo_services(catalog)

    async def members(_: str) -> list[str]:
        return []

    client = PrometheusClient(prometheus_server.url)
    service = SloService(
        slo_catalog,
        ManualClock(SLO_AT),
        Authorizer(slo_catalog, MembershipCache(fetch=members)),
        client,
    )
    gate = SloBudgetGate(service)
    try:
        burned = await gate.check("burned", "prod")
        counters = prometheus_server.data["burned"]
        bad, _, total = counters.delta(SLO_AT - timedelta(days=30), SLO_AT)
        left = 1 - bad / (0.001 * total)
        assert burned is not None and burned.exhausted
        assert burned.summary.startswith("burned/availability")
        assert "exhausted" not in burned.summary.lower(), "the gate's line says it once"
        assert f"error budget left {left * 100:.0f}%" in burned.summary
        healthy = await gate.check("healthy", "prod")
        assert healthy is not None and not healthy.exhausted
        assert await gate.check("healthy", "staging") is None, "no SLO measured in staging"
        assert await gate.check("newborn", "prod") is None, "no data never blocks"
        assert await gate.check("idle", "prod") is None
        assert await gate.check("checkout", "prod") is None, "no SLO"
    finally:
        await client.close()


def test_config_check_runs_each_slo_query(
    prometheus_server: RunningPrometheus,
    catalog: Catalog,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    data = with_slo_services(catalog).model_dump(mode="json")
    data["services"][-1]["slos"][0]["ratio"]["total"] = "sum(rate(oops[5m]"
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("PROMETHEUS_URL", prometheus_server.url)
    assert main(["config", "check", "--catalog", str(path)]) == 2
    err = capsys.readouterr().err
    assert "1 SLO query problem" in err and "newborn: SLO availability: `total` query" in err
    monkeypatch.setenv("PROMETHEUS_URL", "http://127.0.0.1:9")
    assert main(["config", "check", "--catalog", str(path)]) == 0
    assert "SLO queries not checked: SLO data unavailable" in capsys.readouterr().err


def test_a_large_report_stays_inside_slack_limits() -> None:
    ref = _ref()
    many = [
        figures(SloRef(f"svc-{i:02d}", ref.slo), Counts(5, 20_000), {}, [0.01] * 30, SloAlerting())
        for i in range(60)
    ] + [
        figures(
            SloRef("wide", ref.slo.model_copy(update={"name": f"slo-{j}"})),
            Counts(5, 20_000),
            {},
            [0.01] * 30,
            SloAlerting(),
        )
        for j in range(15)
    ]
    text, blocks = slo_report(SloReport("team big", datetime(2026, 11, 24, tzinfo=UTC), many))
    assert len(blocks) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert "more services not shown" in json.dumps(blocks)
    assert text == "SLOs for team big: 75 SLOs, worst ok"
