"""`POST /api/webhooks/github` and `POST /api/webhooks/gitlab`: pull-request events in.

Verified on the raw body before anything is parsed (a forged delivery is a 401 and changes
nothing); a replayed delivery id is a 200 that changes nothing; a body that is not a
pull-request event is a 400 saying why; an event for a repository without previews is a 202
and a log line. Before the answer: the signature, the parse, and one durable write (the
delivery id, the change, the sync's operation row), shared with the deliveries arriving at the
same moment (`storage.group_commit`). The sync runs after, once no webhook is waiting for its
answer, so a flood is answered first and provisioned after.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial

from aiohttp import web

from commands.previews.service import Receipt
from core.ack_priority import PENDING_ACKS
from core.routes import Handler
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


@dataclass(frozen=True)
class HookSpec:
    """What differs between the GitHub and the GitLab webhook; the handling is one."""

    host: str
    setting: str
    proof: str
    refusal: str
    event_header: str
    events: tuple[str, ...]
    delivery_headers: tuple[str, ...]
    verify: Callable[[str, Mapping[str, str], bytes], bool]
    parse: Callable[[bytes], PullRequestEvent | None]
    ping: str = ""


def _verify_gitlab(token: str, headers: Mapping[str, str], body: bytes) -> bool:
    return verify_gitlab(token, headers)  # GitLab sends the token itself, not a signature


GITHUB = HookSpec(
    host="GitHub",
    setting="FORGEBOT_GITHUB_WEBHOOK_SECRET",
    proof="X-Hub-Signature-256",
    refusal="invalid signature",
    event_header=GITHUB_EVENT,
    events=("pull_request",),
    delivery_headers=(GITHUB_DELIVERY,),
    verify=verify_github,
    parse=parse_github,
    ping="ping",
)
GITLAB = HookSpec(
    host="GitLab",
    setting="FORGEBOT_GITLAB_WEBHOOK_TOKEN",
    proof="X-Gitlab-Token",
    refusal="invalid token",
    event_header=GITLAB_EVENT,
    events=(GITLAB_MERGE_REQUEST_HOOK,),
    delivery_headers=(GITLAB_EVENT_UUID, GITLAB_IDEMPOTENCY),
    verify=_verify_gitlab,
    parse=parse_gitlab,
)


def github_route(receive: Receive, secret: str | None) -> Handler:
    return partial(answer_hook, GITHUB, receive, secret)


def gitlab_route(receive: Receive, token: str | None) -> Handler:
    return partial(answer_hook, GITLAB, receive, token)


async def answer_hook(
    spec: HookSpec, receive: Receive, secret: str | None, request: web.Request
) -> web.StreamResponse:
    with PENDING_ACKS.answering():  # work started by earlier deliveries waits for this one
        return await _answer_hook(spec, receive, secret, request)


async def _answer_hook(
    spec: HookSpec, receive: Receive, secret: str | None, request: web.Request
) -> web.StreamResponse:
    if not secret:
        log.warning("a %s webhook arrived but %s is not set", spec.host, spec.setting)
        return _answer(404, error=f"{spec.host} webhooks are not configured")
    body = await request.read()
    if not spec.verify(secret, request.headers, body):
        log.warning("rejected a %s webhook: missing or wrong %s", spec.host, spec.proof)
        return _answer(401, error=spec.refusal)
    kind = request.headers.get(spec.event_header, "")
    if spec.ping and kind == spec.ping:
        return _answer(200, outcome="pong")
    if kind not in spec.events:
        return _answer(202, outcome="ignored", detail=f"{kind or 'unnamed'} events are not used")
    delivery = _delivery(
        next((v for h in spec.delivery_headers if (v := request.headers.get(h, ""))), "")
    )
    if delivery is None:
        return _answer(400, error=f"{spec.delivery_headers[0]} is missing or invalid")
    try:
        event = spec.parse(body)
    except MalformedWebhook as exc:
        log.warning("rejected a malformed %s webhook: %s", spec.host, exc)
        return _answer(400, error=str(exc))
    if event is None:
        return _answer(202, outcome="ignored", detail="this action changes no preview")
    return await _receive(receive, event, delivery)
