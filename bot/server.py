"""The aiohttp server: `/slack/events`, `/healthz`, `/readyz`, `/metrics`, and the CI/CD API.

Slack signatures are verified on the raw body before anything parses it; a missing, malformed,
forged or stale signature is a 401 and nothing else happens (nothing is logged that carries the
body, a response_url, a token or the secret).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot import metrics
from bot.clock import Clock
from integrations.slack.signing import verify_request
from storage.db import Database

log = logging.getLogger(__name__)

Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]
"""(method, path, handler): extra HTTP routes a capability adds (e.g. POST /api/deployments)."""


def _kind(body: bytes, content_type: str) -> str:
    if body.startswith(b"payload="):
        return "interaction"
    if "json" in content_type:
        return "event"
    return "command"


def build_web_app(
    bolt: AsyncApp,
    *,
    signing_secret: str,
    db: Database,
    clock: Clock,
    extra_routes: list[Route] | None = None,
) -> web.Application:
    async def slack_events(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        body = await request.read()
        kind = _kind(body, request.content_type)
        verdict = verify_request(signing_secret, request.headers, body, clock.now().timestamp())
        if not verdict.ok:
            metrics.REQUESTS.labels(kind, "401").inc()
            log.warning("rejected a Slack request: %s", verdict.reason)
            return web.Response(status=401, text="invalid signature")
        bolt_request = AsyncBoltRequest(
            body=body.decode("utf-8"),
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        bolt_response = await bolt.async_dispatch(bolt_request)
        response = await to_aiohttp_response(bolt_response)
        metrics.REQUESTS.labels(kind, str(response.status)).inc()
        metrics.ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        ready = await db.ping()
        metrics.READY.set(1 if ready else 0)
        if ready:
            return web.Response(text="ready")
        return web.Response(status=503, text="database unreachable")

    async def metrics_endpoint(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    for method, path, handler in extra_routes or []:
        app.router.add_route(method, path, handler)
    return app
