"""The aiohttp server: `/slack/events`, `/healthz`, `/readyz`, `/metrics`, and the `/api/` routes.

Slack signatures are verified on the raw body before anything parses it; a missing, malformed,
forged or stale signature is a 401 and nothing else happens (nothing is logged that carries the
body, a response_url, a token or the secret).

The server starts in two phases. It listens at once with `/healthz` (the process is alive)
while the heavy parts (SQLAlchemy, bolt, clients) load; `/readyz` and `/slack/events` answer
503 until `ServingState.attach` hands them the app and the database. This module imports only
light dependencies for that reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core import metrics
from core.ack_priority import PENDING_ACKS
from core.clock import Clock
from integrations.slack.body import malformed
from integrations.slack.signing import verify_request

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from storage.db import Database

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]
"""(method, path under /api/, handler): HTTP routes a capability adds, e.g. POST deployments."""


def _kind(body: bytes, content_type: str) -> str:
    if body.startswith(b"payload="):
        return "interaction"
    if "json" in content_type:
        return "event"
    return "command"


@dataclass
class ServingState:
    """What the HTTP handlers need; empty while the process is still starting."""

    bolt: AsyncApp | None = None
    db: Database | None = None
    signing_secret: str = ""
    api_routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    draining: bool = False
    """Set on SIGTERM: /readyz answers 503 so the load balancer stops sending requests."""

    def attach(
        self, bolt: AsyncApp, db: Database, signing_secret: str, routes: list[Route]
    ) -> None:
        self.api_routes = {
            (method.upper(), path.strip("/")): handler for method, path, handler in routes
        }
        self.db = db
        self.signing_secret = signing_secret
        self.bolt = bolt  # last: its presence is what marks the server ready

    @property
    def ready(self) -> bool:
        return self.bolt is not None


def _starting() -> web.Response:
    return web.Response(status=503, text="starting", headers={"Retry-After": "1"})


def build_web_app(state: ServingState, clock: Clock) -> web.Application:
    async def slack_events(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        if state.bolt is None:
            return _starting()
        with PENDING_ACKS.answering():
            return await answer(request, state.bolt, started)

    async def answer(request: web.Request, bolt: AsyncApp, started: float) -> web.StreamResponse:
        from slack_bolt.adapter.aiohttp import to_aiohttp_response
        from slack_bolt.request.async_request import AsyncBoltRequest

        body = await request.read()
        kind = _kind(body, request.content_type)
        verdict = verify_request(
            state.signing_secret, request.headers, body, clock.now().timestamp()
        )
        if not verdict.ok:
            metrics.REQUESTS.labels(kind, "401").inc()
            log.warning("rejected a Slack request: %s", verdict.reason)
            return web.Response(status=401, text="invalid signature")
        problem = malformed(body, request.content_type)
        if problem is not None:
            metrics.REQUESTS.labels(kind, "400").inc()
            log.warning("refused a malformed Slack request (%s): %s", kind, problem)
            return web.Response(status=400, text="malformed request")
        bolt_request = AsyncBoltRequest(
            body=body.decode("utf-8"),
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        try:
            bolt_response = await bolt.async_dispatch(bolt_request)
        except Exception as exc:  # a shape bolt cannot parse that `malformed` let through
            metrics.REQUESTS.labels(kind, "400").inc()
            log.warning(
                "refused a Slack request bolt could not parse (%s): %s", kind, type(exc).__name__
            )
            return web.Response(status=400, text="malformed request")
        if bolt_response.status == 404:
            # Verified, but no listener wants it (an old button, an event type not used):
            # Slack retries failures and disables event subscriptions that keep failing.
            log.info("no listener for a %s request; acknowledged", kind)
            bolt_response.status, bolt_response.body = 200, ""
        elif bolt_response.status >= 500:
            log.warning("bolt answered %s to a %s request", bolt_response.status, kind)
            bolt_response.status, bolt_response.body = 400, "malformed request"
        response = await to_aiohttp_response(bolt_response)
        metrics.REQUESTS.labels(kind, str(response.status)).inc()
        metrics.ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        if state.db is None:
            return _starting()
        if state.draining:
            metrics.READY.set(0)
            return web.Response(status=503, text="shutting down")
        ready = await state.db.ping()
        metrics.READY.set(1 if ready else 0)
        if ready:
            return web.Response(text="ready")
        return web.Response(status=503, text="database unreachable")

    async def metrics_endpoint(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def api(request: web.Request) -> web.StreamResponse:
        if not state.ready:
            return _starting()
        handler = state.api_routes.get((request.method, request.match_info["tail"].strip("/")))
        if handler is None:
            return web.json_response({"error": "not found"}, status=404)
        return await handler(request)

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_route("*", "/api/{tail:.*}", api)
    return app


@dataclass
class Listener:
    runner: web.AppRunner
    url: str


async def listen(app: web.Application, host: str, port: int) -> Listener:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1] if site._server else port  # type: ignore[union-attr,attr-defined]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
    return Listener(runner, f"http://{shown}:{bound}")
