"""Loopback fakes of PagerDuty's Events API v2 and Opsgenie's Alert API v2.

They check each request against the documented shape (required fields, enumerations, length
limits, the auth header) and answer as the real services do: `202` with their JSON bodies, or
`400` (PagerDuty: `{"status": "invalid event", "errors": [...]}`; Opsgenie:
`{"message": ..., "errors": {...}}`) and `401`/`422` where documented. Every call is recorded.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from integrations.sandbox.server_thread import RunningServer, serve_in_thread

PD_ACTIONS = {"trigger", "acknowledge", "resolve"}
PD_SEVERITIES = {"critical", "error", "warning", "info"}
OG_PRIORITIES = {"P1", "P2", "P3", "P4", "P5"}


@dataclass
class PagingCall:
    provider: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int
    errors: list[str] = field(default_factory=list)


@dataclass
class FakePagingState:
    routing_keys: set[str] = field(default_factory=set)
    genie_keys: set[str] = field(default_factory=set)
    calls: list[PagingCall] = field(default_factory=list)
    open_alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[PagingCall]:
        with self.lock:
            return list(self.calls)


def _pagerduty_errors(body: dict[str, Any], keys: set[str]) -> list[str]:
    errors = []
    if body.get("routing_key") not in keys:
        errors.append("'routing_key' is invalid")
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        errors.append("'event_action' is invalid")
    if action in ("acknowledge", "resolve") and not body.get("dedup_key"):
        errors.append("'dedup_key' is missing")
    if len(str(body.get("dedup_key", ""))) > 255:
        errors.append("'dedup_key' is longer than 255")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing")
        else:
            for name in ("summary", "source", "severity"):
                if not payload.get(name):
                    errors.append(f"'payload.{name}' is missing")
            if len(str(payload.get("summary", ""))) > 1024:
                errors.append("'payload.summary' is longer than 1024")
            if payload.get("severity") not in PD_SEVERITIES:
                errors.append("'payload.severity' is invalid")
    for link in body.get("links") or []:
        if not isinstance(link, dict) or not link.get("href"):
            errors.append("'links' entries need href")
    return errors


def _opsgenie_errors(body: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    message = body.get("message")
    if not message:
        errors["message"] = "Message can not be empty."
    elif len(str(message)) > 130:
        errors["message"] = "Message can not be longer than 130 characters."
    if len(str(body.get("alias", ""))) > 512:
        errors["alias"] = "Alias can not be longer than 512 characters."
    if len(str(body.get("description", ""))) > 15000:
        errors["description"] = "Description can not be longer than 15000 characters."
    if "priority" in body and body["priority"] not in OG_PRIORITIES:
        errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]"
    if len(body.get("tags") or []) > 20:
        errors["tags"] = "Tags can not be more than 20."
    return errors


def build_app(state: FakePagingState) -> web.Application:
    app = web.Application()

    def record(call: PagingCall) -> None:
        with state.lock:
            state.calls.append(call)

    async def enqueue(request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            record(PagingCall("pagerduty", request.path, {}, dict(request.headers), 400))
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid"}, status=400
            )
        errors = _pagerduty_errors(body, state.routing_keys)
        status = 400 if errors else 202
        record(PagingCall("pagerduty", request.path, body, dict(request.headers), status, errors))
        if errors:
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status=400,
            )
        dedup = str(body.get("dedup_key") or uuid.uuid4().hex)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup}, status=202
        )

    def _genie_auth(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("GenieKey ") and header[9:] in state.genie_keys

    async def create_alert(request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = {}
        headers = dict(request.headers)
        if not _genie_auth(request):
            record(PagingCall("opsgenie", request.path, body, headers, 401, ["auth"]))
            return web.json_response({"message": "Could not authenticate", "took": 0.0}, status=401)
        errors = _opsgenie_errors(body if isinstance(body, dict) else {})
        status = 422 if errors else 202
        record(PagingCall("opsgenie", request.path, body, headers, status, list(errors.values())))
        if errors:
            return web.json_response(
                {"message": "Request body is not processable", "errors": errors, "took": 0.0},
                status=422,
            )
        alias = str(body.get("alias") or uuid.uuid4().hex)
        with state.lock:
            state.open_alerts.setdefault(alias, body)
        return web.json_response(
            {"result": "Request will be processed", "took": 0.01, "requestId": str(uuid.uuid4())},
            status=202,
        )

    async def close_alert(request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            body = {}
        headers = dict(request.headers)
        if not _genie_auth(request):
            record(PagingCall("opsgenie", request.path, body, headers, 401, ["auth"]))
            return web.json_response({"message": "Could not authenticate", "took": 0.0}, status=401)
        identifier_type = request.query.get("identifierType", "id")
        errors = [] if identifier_type in ("id", "tiny", "alias") else ["identifierType"]
        status = 400 if errors else 202
        record(PagingCall("opsgenie", request.path_qs, body, headers, status, errors))
        if errors:
            return web.json_response({"message": "Invalid identifierType"}, status=400)
        with state.lock:
            state.open_alerts.pop(request.match_info["identifier"], None)
        return web.json_response(
            {"result": "Request will be processed", "took": 0.01, "requestId": str(uuid.uuid4())},
            status=202,
        )

    app.router.add_post("/v2/enqueue", enqueue)
    app.router.add_post("/v2/alerts", create_alert)
    app.router.add_post("/v2/alerts/{identifier}/close", close_alert)
    return app


@dataclass
class RunningFakePaging:
    server: RunningServer
    state: FakePagingState

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()


def start_fake_paging(
    *, routing_keys: set[str] | None = None, genie_keys: set[str] | None = None
) -> RunningFakePaging:
    state = FakePagingState(set(routing_keys or ()), set(genie_keys or ()))
    return RunningFakePaging(serve_in_thread(build_app(state)), state)
