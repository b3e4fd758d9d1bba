"""`/forge slo`, the burn-rate alerts and their buttons, through the running bot against the
real Prometheus (backfilled by promtool). Every expected figure is recomputed here from the
generated counters, independently of the bot's PromQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.runtime import Runtime
from commands.slo.views import percent
from core.catalog import BurnCondition, Catalog, SloAlerting
from core.clock import ManualClock
from core.config import Settings
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.prometheus_server import RunningPrometheus
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import (
    SignedSlackClient,
    app_home_opened,
    block_actions,
    slash_command,
)
from storage import deployments as deploy_repo
from storage import slo_alerts as slo_repo
from storage.models import DeploymentRecord, DeployOutcome
from storage.slo_alerts import SloAlertEpisode
from tests.fixtures.prometheus import DATA_END, SLO_AT, with_slo_services
from tests.fixtures.slack import DEVELOPER, ONCALL, SIGNING_SECRET, STRANGER
from tests.tcp_proxy import TcpProxy

BROKEN = {
    "name": "broken",
    "team": "payments",
    "image": "registry.example.com/payments/broken",
    "slos": [
        {
            "name": "availability",
            "objective": 99.9,
            "ratio": {"bad": 'http_requests_total{service="healthy",code=~"5.."', "total": "up"},
        },
        {
            "name": "latency",
            "objective": 99,
            "latency": {
                "metric": "http_request_duration_seconds",
                "selector": 'service="healthy"',
                "threshold": "0.3",
            },
        },
        {
            "name": "fast",
            "objective": 99,
            "latency": {
                "metric": "http_request_duration_seconds",
                "selector": 'service="healthy"',
                "threshold": "0.25",
            },
        },
    ],
}


@pytest.fixture
def catalog(catalog: Catalog) -> Catalog:
    return with_slo_services(catalog, [BROKEN])


def _signed(runtime: Runtime, clock: ManualClock) -> SignedSlackClient:
    # The bot checks request timestamps against its own (injected) clock.
    return SignedSlackClient(
        runtime.url, SIGNING_SECRET, wall_clock=lambda: clock.now().timestamp()
    )


async def _bot(settings: Settings, catalog: Catalog, clock: ManualClock) -> Runtime:
    runtime = Runtime(settings, catalog, clock=clock, run_scheduler=False)
    await runtime.start()
    return runtime


@pytest.fixture
async def bot(
    bot_settings: Settings,
    catalog: Catalog,
    prometheus_server: RunningPrometheus,
    kubeconfig: Path,
) -> AsyncIterator[tuple[Runtime, SignedSlackClient, ManualClock]]:
    clock = ManualClock(SLO_AT)
    settings = bot_settings.model_copy(
        update={"prometheus_url": prometheus_server.url, "kubeconfig": str(kubeconfig)}
    )
    runtime = await _bot(settings, catalog, clock)
    signed = _signed(runtime, clock)
    yield runtime, signed, clock
    await signed.close()
    await runtime.stop()


async def _slo(
    signed: SignedSlackClient, slack: RunningFakeSlack, who: Any, text: str
) -> tuple[dict[str, Any], float]:
    """The ack, then the answer (from the ack or the response_url), and the seconds between."""
    slack.state.reset()
    response = await signed.send(slash_command(who, "/slo", text, slack.new_response_url()))
    acked = time.monotonic()
    assert response.status == 200
    if response.body:
        return dict(response.json()), 0.0
    calls = await slack.state.until(
        lambda calls: [c for c in calls if c.method == "response_url"], timeout=10
    )
    return dict(calls[-1].args), time.monotonic() - acked


def _service_text(answer: dict[str, Any], key: str) -> str:
    """The report's lines for one SLO (`service/slo`)."""
    for block in answer["blocks"]:
        text = (block.get("text") or {}).get("text", "")
        for part in text.split("\n\n"):
            if f"*{key}*" in part:
                return str(part)
    raise AssertionError(f"{key} not in the report: {json.dumps(answer['blocks'])[:2000]}")


def _expected(
    prometheus: RunningPrometheus, service: str, window: timedelta, *, latency: bool = False
) -> tuple[int, int]:
    bad, slow, total = prometheus.data[service].delta(SLO_AT - window, SLO_AT)
    return (slow if latency else bad), total


async def test_team_report_matches_the_generated_series(
    bot: tuple[Runtime, SignedSlackClient, ManualClock],
    fake_slack: RunningFakeSlack,
    prometheus_server: RunningPrometheus,
) -> None:
    _, signed, _ = bot
    answer, _ = await _slo(signed, fake_slack, DEVELOPER, "")
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith("SLOs for team payments")

    for service, latency, objective in (
        ("healthy", False, 99.9),
        ("burned", False, 99.9),
        ("burning", False, 99.9),
        ("burning", True, 99.0),
    ):
        key = f"{service}/{'latency' if latency else 'availability'}"
        text = _service_text(answer, key)
        bad, total = _expected(prometheus_server, service, timedelta(days=30), latency=latency)
        allowed = (1 - objective / 100) * total
        assert f"SLI {percent(1 - bad / total)}" in text, text
        assert f"error budget left {(1 - bad / allowed) * 100:.0f}%" in text, text
        minutes = (1 - bad / allowed) * 30 * 24 * 60 * (1 - objective / 100)
        assert f"({minutes:.1f} of " in text, text
        for window, label in ((timedelta(hours=1), "1h"), (timedelta(days=3), "3d")):
            wbad, wtotal = _expected(prometheus_server, service, window, latency=latency)
            burn = wbad / wtotal / (1 - objective / 100)
            assert f"{label} {burn:.1f}x" in text, (label, text)

    burned = _service_text(answer, "burned/availability")
    assert "critical" in burned and "left -" in burned, "budget overspent last week"
    burning = _service_text(answer, "burning/availability")
    assert "critical" in burning and "page: burn rate over 14.4x for 1h and 5m" in burning
    assert "ok" in _service_text(answer, "healthy/availability")

    # Worst first: the two critical services lead, the healthy one comes after the no-data ones.
    body = json.dumps(answer["blocks"])
    burned_at, burning_at, idle_at, healthy_at = (
        body.index(f"*{k}/") for k in ("burned", "burning", "idle", "healthy")
    )
    assert max(burned_at, burning_at) < idle_at < healthy_at

    # One sparkline bar a day; the incident a week ago is the tallest bar of burned's trend.
    trend = burned.split("daily budget use `")[1].split("`")[0]
    assert len(trend) == 30 and max(trend) == "█"
    assert trend.index("█") in (21, 22)


async def test_no_traffic_and_no_data_are_said_so_never_nan_or_100(
    bot: tuple[Runtime, SignedSlackClient, ManualClock], fake_slack: RunningFakeSlack
) -> None:
    _, signed, _ = bot
    answer, _ = await _slo(signed, fake_slack, DEVELOPER, "idle")
    text = json.dumps(answer["blocks"])
    assert "no traffic in the last 30d" in text
    assert "NaN" not in text and "nan" not in text.lower().replace("no data", "")
    assert "100%" not in text and "SLI" not in text
    answer, _ = await _slo(signed, fake_slack, DEVELOPER, "newborn")
    text = json.dumps(answer["blocks"])
    assert "no series for this SLI yet" in text and "NaN" not in text and "100%" not in text


async def test_promql_error_in_the_catalog_is_shown_for_that_slo_only(
    bot: tuple[Runtime, SignedSlackClient, ManualClock], fake_slack: RunningFakeSlack
) -> None:
    _, signed, _ = bot
    answer, _ = await _slo(signed, fake_slack, DEVELOPER, "payments")
    broken = _service_text(answer, "broken/availability")
    assert "query error" in broken and "PromQL error (bad_data)" in broken, broken
    # The same chunk's other SLOs still have their figures.
    assert "SLI" in _service_text(answer, "broken/latency")
    assert "SLI" in _service_text(answer, "healthy/latency")
    # A threshold that is no bucket bound is a configuration problem, never "all requests slow".
    fast = _service_text(answer, "broken/fast")
    assert 'no bucket le="0.25"' in fast and "SLI" not in fast, fast


async def test_unknown_service_and_slo_less_scopes_are_clear(
    bot: tuple[Runtime, SignedSlackClient, ManualClock], fake_slack: RunningFakeSlack
) -> None:
    _, signed, _ = bot
    answer, _ = await _slo(signed, fake_slack, DEVELOPER, "ghosts")
    assert "no service or team called `ghosts`" in answer["text"]
    answer, _ = await _slo(signed, fake_slack, DEVELOPER, "search")
    assert "No service of team `search` has an SLO" in answer["text"]
    answer, _ = await _slo(signed, fake_slack, STRANGER, "")
    assert "You are in no team" in answer["text"]
    answer, _ = await _slo(signed, fake_slack, DEVELOPER, "search-api")
    assert "has no SLOs in the catalog" in answer["text"]


async def _stalled_server() -> tuple[asyncio.Server, int]:
    """Accepts connections and never answers: a Prometheus stuck on a heavy query."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes its end
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("fault", ["down", "slow"])
async def test_prometheus_down_or_slow_answers_unavailable_within_3s(
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    prometheus_server: RunningPrometheus,
    fault: str,
) -> None:
    proxy = TcpProxy("127.0.0.1", int(prometheus_server.url.rsplit(":", 1)[1]))
    await proxy.start()
    stalled, stalled_port = await _stalled_server()
    if fault == "down":
        await proxy.cut()
        url = f"http://127.0.0.1:{proxy.port}"
    else:
        url = f"http://127.0.0.1:{stalled_port}"
    clock = ManualClock(SLO_AT)
    runtime = await _bot(bot_settings.model_copy(update={"prometheus_url": url}), catalog, clock)
    signed = _signed(runtime, clock)
    try:
        answer, seconds = await _slo(signed, fake_slack, DEVELOPER, "payments")
        assert "SLO data unavailable" in answer["text"], answer
        assert answer["response_type"] == "ephemeral"
        assert seconds < 3.0, seconds
        # The deploy gate never blocks on missing knowledge.
        assert runtime.ctx is not None and runtime.ctx.budget_gate is not None
        assert await runtime.ctx.budget_gate.check("burned", "prod") is None
    finally:
        await signed.close()
        await runtime.stop()
        stalled.close()
        await proxy.cut()


async def test_burn_rate_alert_once_per_episode_with_buttons_then_resolved(
    bot: tuple[Runtime, SignedSlackClient, ManualClock],
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
) -> None:
    runtime, signed, clock = bot
    assert runtime.ctx is not None and runtime.db is not None
    alerts = runtime.ctx.slo_alerts

    # Three hours before the data ends, `recovered` is in its incident (20x for 80 minutes).
    clock.set(DATA_END - timedelta(hours=3) + timedelta(seconds=30))
    fake_slack.state.reset()

    def since(seen: int, method: str) -> list[Any]:
        return [c for c in fake_slack.state.calls[seen:] if c.method == method]

    first = await alerts.run()
    assert first.fired == ["recovered/availability"], first
    await runtime.ctx.slack.flush()
    posts = since(0, "chat.postMessage")
    assert len(posts) == 1 and posts[0].args["channel"] == "C0PAYMENTS"
    assert posts[0].response is not None
    alert_ts = posts[0].response["ts"]
    buttons = [
        e["text"]["text"]
        for b in posts[0].args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert buttons == ["Show SLO", "Freeze deploys"], "no deploy in the window: no rollback"

    # The condition still holds a minute later: nothing is posted again, even by two replicas.
    clock.advance(timedelta(minutes=1))
    again = await asyncio.gather(alerts.run(), alerts.run())
    assert [r.fired for r in again] == [[], []]
    await runtime.ctx.slack.flush()
    assert len(since(0, "chat.postMessage")) == 1 and not since(0, "chat.update")

    # A deploy of `burning` half an hour before the end of the data, then the end of the data:
    # `burning` pages (availability and latency) with a rollback button; `recovered` resolves.
    clock.set(SLO_AT)
    await runtime.db.run(
        lambda s: deploy_repo.record_finished(
            s,
            DeploymentRecord(
                service="burning",
                team="payments",
                environment="prod",
                kind="deploy",
                version="2.0.0",
                previous_version="1.9.0",
                actor="U0DEVELOPER",
                source="ci",
                started_at=SLO_AT - timedelta(minutes=30),
                finished_at=SLO_AT - timedelta(minutes=25),
                outcome=DeployOutcome.SUCCEEDED,
            ),
        )
    )
    seen = len(fake_slack.state.calls)
    second = await asyncio.gather(alerts.run(), alerts.run())
    fired = sorted(k for r in second for k in r.fired)
    assert fired == ["burning/availability", "burning/latency"], second
    assert sorted(k for r in second for k in r.resolved) == ["recovered/availability"]
    await runtime.ctx.slack.flush()
    posts = since(seen, "chat.postMessage")
    assert len(posts) == 2, "two SLOs, one message each, never doubled"
    updates = since(seen, "chat.update")
    assert len(updates) == 1 and updates[0].args["ts"] == alert_ts
    assert "Resolved: recovered/availability" in updates[0].args["text"]
    page = next(p for p in posts if "burning/availability" in p.args["text"])
    assert "2.0.0" in json.dumps(page.args["blocks"])
    actions = {
        e["text"]["text"]: e
        for b in page.args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }
    assert list(actions) == ["Show SLO", "Roll back last deploy", "Freeze deploys"]

    async def press(label: str) -> dict[str, Any]:
        fake_slack.state.reset()
        await signed.send(
            block_actions(
                ONCALL,
                {
                    "action_id": actions[label]["action_id"],
                    "block_id": "slo-alert",
                    "value": actions[label]["value"],
                },
                response_url=fake_slack.new_response_url(),
                message={"ts": (page.response or {})["ts"]},
                channel_id="C0PAYMENTS",
            )
        )
        calls = await fake_slack.state.until(
            lambda calls: [c for c in calls if c.method == "response_url"]
        )
        return dict(calls[-1].args)

    shown = await press("Show SLO")
    assert shown["response_type"] == "ephemeral" and "burning/availability" in json.dumps(
        shown["blocks"]
    )
    image = "registry.example.com/payments/burning"
    fake_kube.seed_deployment("burning", "burning", f"{image}:1.9.0", container="app")
    fake_kube.patch(
        next(k for k in KINDS if k.plural == "deployments"),
        "burning",
        "burning",
        "application/strategic-merge-patch+json",
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "app", "image": f"{image}:2.0.0"}]}}
            }
        },
    )
    confirm = await press("Roll back last deploy")
    assert "from `2.0.0` to `1.9.0`" in json.dumps(confirm["blocks"]), confirm
    frozen = await press("Freeze deploys")
    assert frozen["response_type"] == "in_channel" and "prod" in frozen["text"], frozen
    assert await runtime.ctx.freezes.frozen("prod") is not None


async def test_configured_ticket_escalates_to_page_in_the_same_message(
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    prometheus_server: RunningPrometheus,
) -> None:
    """Thresholds come from the catalog; a ticket that becomes a page updates its message, and
    an episode whose opener died before posting is posted once by a later run."""
    tuned = catalog.model_copy(
        update={
            "slo_alerting": SloAlerting(
                ticket=[BurnCondition(long=timedelta(hours=2), short=timedelta(minutes=5), burn=3)]
            )
        }
    )
    clock = ManualClock(DATA_END - timedelta(minutes=75) + timedelta(seconds=30))
    runtime = await _bot(
        bot_settings.model_copy(update={"prometheus_url": prometheus_server.url}), tuned, clock
    )
    try:
        assert runtime.ctx is not None and runtime.db is not None
        alerts = runtime.ctx.slo_alerts
        fake_slack.state.reset()
        # 15 minutes into burning's incident: 2h burn 6.25x (ticket), 1h burn 12.9x (no page).
        first = await alerts.run()
        assert first.fired == ["burning/availability"], first
        await runtime.ctx.slack.flush()
        (ticket,) = [c for c in fake_slack.state.calls if c.method == "chat.postMessage"]
        assert "(ticket)" in ticket.args["text"]
        ticket_ts = (ticket.response or {})["ts"]

        # An opener that died between opening an episode and posting it.
        orphan = SloAlertEpisode(
            slo_key="burning/latency",
            service="burning",
            environment="prod",
            severity="page",
            condition="",
            started_at=clock.now(),
            channel="C0PAYMENTS",
        )
        assert await runtime.db.run(lambda s: slo_repo.open_episode(s, orphan)) is not None

        clock.set(SLO_AT)
        seen = len(fake_slack.state.calls)
        runs = await asyncio.gather(alerts.run(), alerts.run())
        assert sorted(k for r in runs for k in r.escalated) == ["burning/availability"]
        assert [r.fired for r in runs] == [[], []], "nothing newly opened"
        await runtime.ctx.slack.flush()
        calls = fake_slack.state.calls[seen:]
        updates = [c for c in calls if c.method == "chat.update"]
        assert len(updates) == 1 and updates[0].args["ts"] == ticket_ts
        assert "(page)" in updates[0].args["text"]
        posts = [c for c in calls if c.method == "chat.postMessage"]
        assert [p.args["text"] for p in posts] == [
            ":rotating_light: burning/latency is burning its error budget (page)"
        ], "the orphan is posted once, by one of the two runs"
    finally:
        await runtime.stop()


async def test_app_home_shows_the_team_slos_worst_first(
    bot: tuple[Runtime, SignedSlackClient, ManualClock], fake_slack: RunningFakeSlack
) -> None:
    _, signed, _ = bot
    fake_slack.state.reset()
    await signed.send(app_home_opened(DEVELOPER, "Ev0SLOHOME"))
    (published,) = await fake_slack.state.until(
        lambda calls: [c for c in calls if c.method == "views.publish"]
    )
    home = json.dumps(published.args["view"])
    assert "*SLOs of payments*" in home and "critical" in home
    assert "burned/availability critical, budget left -" in home
