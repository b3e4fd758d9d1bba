"""`POST /api/webhooks/github` and `POST /api/webhooks/gitlab`: pull-request events in.

Verified on the raw body before anything is parsed (a forged delivery is a 401 and changes
nothing); a replayed delivery id is a 200 that changes nothing; a body that is not a
pull-request event is a 400 saying why; an event for a repository without previews is a 202
and a log line. The work after the answer runs as a durable operation, so every answer comes
in milliseconds, whatever provisioning costs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from core.routes import Handler

from commands.previews.service import Receipt
from integrations.codehost.webhooks import (
    GITHUB_DELIVERY,
    GITHUB_EVENT,
    GITLAB_EVENT,
    GITLAB_EVENT_UUID,
    GITLAB_IDEMPOTENCY,
    GITLAB_MERGE_REQUEST_HOOK,
    MalformedWebhook,
    PullRequestEvent,
    parse_github,
    parse_gitlab,
    verify_github,
    verify_gitlab,
)
from storage.db import DatabaseUnavailable

log = logging.getLogger(__name__)

Receive = Callable[[PullRequestEvent, str], Awaitable[Receipt]]
MAX_DELIVERY_ID = 100


def _answer(status: int, **fields: object) -> web.Response:
    return web.json_response(fields, status=status)


async def _receive(receive: Receive, event: PullRequestEvent, delivery: str) -> web.Response:
    try:
        receipt = await receive(event, delivery)
    except DatabaseUnavailable:
        return _answer(503, error="the database is unavailable; deliver again later")
    status = 200 if receipt.outcome == "duplicate" else 202
    return _answer(
        status,
        outcome=receipt.outcome,
        detail=receipt.detail,
        repository=event.repository,
        number=event.number,
    )


def _delivery(value: str) -> str | None:
    value = value.strip()
    return value if 0 < len(value) <= MAX_DELIVERY_ID and value.isprintable() else None


def github_route(receive: Receive, secret: str | None) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not secret:
            log.warning("a GitHub webhook arrived but FORGEBOT_GITHUB_WEBHOOK_SECRET is not set")
            return _answer(404, error="GitHub webhooks are not configured")
        body = await request.read()
        if not verify_github(secret, request.headers, body):
            log.warning("rejected a GitHub webhook: missing or wrong X-Hub-Signature-256")
            return _answer(401, error="invalid signature")
        kind = request.headers.get(GITHUB_EVENT, "")
        if kind == "ping":
            return _answer(200, outcome="pong")
        if kind != "pull_request":
            return _answer(
                202, outcome="ignored", detail=f"{kind or 'unnamed'} events are not used"
            )
        delivery = _delivery(request.headers.get(GITHUB_DELIVERY, ""))
        if delivery is None:
            return _answer(400, error=f"{GITHUB_DELIVERY} is missing or invalid")
        try:
            event = parse_github(body)
        except MalformedWebhook as exc:
            log.warning("rejected a malformed GitHub webhook: %s", exc)
            return _answer(400, error=str(exc))
        if event is None:
            return _answer(202, outcome="ignored", detail="this action changes no preview")
        return await _receive(receive, event, delivery)

    return handle


def gitlab_route(receive: Receive, token: str | None) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not token:
            log.warning("a GitLab webhook arrived but FORGEBOT_GITLAB_WEBHOOK_TOKEN is not set")
            return _answer(404, error="GitLab webhooks are not configured")
        body = await request.read()
        if not verify_gitlab(token, request.headers):
            log.warning("rejected a GitLab webhook: missing or wrong X-Gitlab-Token")
            return _answer(401, error="invalid token")
        kind = request.headers.get(GITLAB_EVENT, "")
        if kind != GITLAB_MERGE_REQUEST_HOOK:
            return _answer(
                202, outcome="ignored", detail=f"{kind or 'unnamed'} events are not used"
            )
        delivery = _delivery(
            request.headers.get(GITLAB_EVENT_UUID, "")
            or request.headers.get(GITLAB_IDEMPOTENCY, "")
        )
        if delivery is None:
            return _answer(400, error=f"{GITLAB_EVENT_UUID} is missing or invalid")
        try:
            event = parse_gitlab(body)
        except MalformedWebhook as exc:
            log.warning("rejected a malformed GitLab webhook: %s", exc)
            return _answer(400, error=str(exc))
        if event is None:
            return _answer(202, outcome="ignored", detail="this action changes no preview")
        return await _receive(receive, event, delivery)

    return handle
