"""The Prometheus gateway against the real server, and against a small loopback server that
fails the way a struggling Prometheus does (5xx, slow) so retries and bounds can be seen."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from aiohttp import web

from integrations.prometheus import PrometheusClient, PrometheusUnavailable, PromQLError
from integrations.sandbox.prometheus_server import RunningPrometheus
from tests.fixtures.prometheus import DATA_END, SLO_AT


async def test_instant_query_is_evaluated_at_the_given_time(
    prometheus_server: RunningPrometheus,
) -> None:
    client = PrometheusClient(prometheus_server.url)
    try:
        (now,) = await client.instant("time()", SLO_AT)
        assert now.value == SLO_AT.timestamp()
        counters = prometheus_server.data["burning"]
        query = 'sum(increase(http_requests_total{service="burning",code="500"}[1h])) / sum(increase(http_requests_total{service="burning"}[1h]))'
        for at in (SLO_AT, SLO_AT - timedelta(hours=2)):
            (sample,) = await client.instant(query, at)
            bad, _, total = counters.delta(at - timedelta(hours=1), at)
            assert sample.value == pytest.approx(bad / total, rel=1e-9)
        # Two hours earlier the incident had not started: the ratio differs, so `time` counted.
        (early,) = await client.instant(query, SLO_AT - timedelta(hours=2))
        assert early.value < 0.01
        (late,) = await client.instant(query, SLO_AT)
        assert late.value == pytest.approx(0.05, rel=0.01)
    finally:
        await client.close()


async def test_range_query_returns_points_at_each_step(
    prometheus_server: RunningPrometheus,
) -> None:
    client = PrometheusClient(prometheus_server.url)
    try:
        series = await client.range(
            'sum(http_requests_total{service="healthy"})',
            DATA_END - timedelta(minutes=10),
            DATA_END,
            timedelta(minutes=5),
        )
        counters = prometheus_server.data["healthy"]
        (only,) = series
        assert [t for t, _ in only.points] == [
            DATA_END - timedelta(minutes=10),
            DATA_END - timedelta(minutes=5),
            DATA_END,
        ]
        last = counters.times.index(DATA_END)
        assert only.points[-1][1] == counters.total(last)
    finally:
        await client.close()


async def test_promql_error_carries_prometheus_error_type_and_message(
    prometheus_server: RunningPrometheus,
) -> None:
    client = PrometheusClient(prometheus_server.url)
    try:
        with pytest.raises(PromQLError) as caught:
            await client.instant("sum(rate(http_requests_total[5m]", SLO_AT)
        assert caught.value.error_type == "bad_data"
        assert "parse error" in caught.value.message
        assert client.queries_sent == 1, "a broken query is not retried"
    finally:
        await client.close()


@dataclass
class Flaky:
    failures: int = 0
    delay: float = 0.0
    seen_auth: list[str] = field(default_factory=list)
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[Flaky, str]]:
    state = Flaky()

    async def query(request: web.Request) -> web.Response:
        state.requests += 1
        state.seen_auth.append(request.headers.get("Authorization", ""))
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await asyncio.sleep(state.delay)
            if state.failures > 0:
                state.failures -= 1
                return web.json_response(
                    {"status": "error", "errorType": "unavailable", "error": "overloaded"},
                    status=503,
                )
            return web.json_response(
                {"status": "success", "data": {"resultType": "vector", "result": []}}
            )
        finally:
            state.in_flight -= 1

    app = web.Application()
    app.router.add_post("/api/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield state, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_5xx_is_retried_then_reported_unavailable(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    client = PrometheusClient(url, retries=2, backoff=0.01)
    try:
        state.failures = 2
        assert await client.instant("up", SLO_AT) == []
        assert state.requests == 3
        state.failures = 5
        with pytest.raises(PrometheusUnavailable, match="HTTP 503 \\(overloaded\\)"):
            await client.instant("up", SLO_AT)
    finally:
        await client.close()


async def test_credentials_are_sent_and_slow_answers_time_out(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    bearer = PrometheusClient(url, token="s3cret-token")
    basic = PrometheusClient(url, username="bot", password="pw")
    slow = PrometheusClient(url, timeout=0.3)
    try:
        await bearer.instant("up", SLO_AT)
        await basic.instant("up", SLO_AT)
        assert state.seen_auth == [
            "Bearer s3cret-token",
            "Basic " + base64.b64encode(b"bot:pw").decode(),
        ]
        state.delay = 2.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(PrometheusUnavailable, match="timed out"):
            await slow.instant("up", SLO_AT)
        assert loop.time() - started < 1.0
    finally:
        for client in (bearer, basic, slow):
            await client.close()


async def test_concurrency_is_bounded(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.delay = 0.05
    client = PrometheusClient(url, concurrency=3)
    try:
        await asyncio.gather(*(client.instant("up", SLO_AT) for _ in range(12)))
        assert state.requests == 12
        assert state.max_in_flight == 3, "the server saw at most three at once, and did see three"
    finally:
        await client.close()
