"""A loopback fake of the Slack Web API for the demo and the tests.

`slack_sdk`'s `AsyncWebClient(base_url=<fake>/api/)` and bolt's `respond()` (to a response_url
minted here) talk to it over HTTP. It records every call, answers with Slack-shaped JSON, keeps
message and view state (so `chat.update` of an unknown ts fails like Slack), checks every
payload against Block Kit limits, and can inject faults (429 with Retry-After, 5xx, drops).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from integrations.sandbox.server_thread import RunningServer, serve_in_thread
from integrations.slack.blockkit import Violation, check_message, check_view


@dataclass
class RecordedCall:
    seq: int
    method: str
    args: dict[str, Any]
    at: float
    violations: list[Violation] = field(default_factory=list)


@dataclass
class Fault:
    status: int
    count: int
    method: str | None = None
    retry_after: str | None = None
    drop: bool = False


class FakeSlackState:
    def __init__(self, token: str = "xoxb-sandbox") -> None:
        self.token = token
        self.lock = threading.Lock()
        self.calls: list[RecordedCall] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.uploads: dict[str, bytes] = {}
        self._seq = itertools.count(1)
        self._ts = itertools.count(1)
        self._listeners: list[Callable[[RecordedCall], None]] = []
        self.changed = threading.Condition(self.lock)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.messages.clear()
            self.views.clear()
            self.faults.clear()
            self.uploads.clear()

    def subscribe(self, listener: Callable[[RecordedCall], None]) -> None:
        self._listeners.append(listener)

    def record(self, method: str, args: dict[str, Any]) -> RecordedCall:
        violations: list[Violation] = []
        if "view" in args and isinstance(args["view"], dict):
            violations = check_view(args["view"])
        elif "blocks" in args or "text" in args:
            blocks = args.get("blocks")
            violations = check_message(
                blocks if isinstance(blocks, list) else None, args.get("text")
            )
        with self.lock:
            call = RecordedCall(next(self._seq), method, args, time.monotonic(), violations)
            self.calls.append(call)
            self.changed.notify_all()
        for listener in list(self._listeners):
            listener(call)
        return call

    def next_ts(self) -> str:
        return f"{1_790_000_000 + next(self._ts)}.000100"

    def take_fault(self, method: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and fault.method in (None, method):
                    fault.count -= 1
                    return fault
        return None

    # --- queries for tests and the shell ---------------------------------------------------
    def find(self, method: str | None = None, **match: Any) -> list[RecordedCall]:
        with self.lock:
            calls = list(self.calls)
        return [
            c
            for c in calls
            if (method is None or c.method == method)
            and all(c.args.get(k) == v for k, v in match.items())
        ]

    def wait_for(self, predicate: Callable[[list[RecordedCall]], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                result = predicate(list(self.calls))
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the bot did not send what was expected in time")
                self.changed.wait(remaining)

    async def until(
        self, predicate: Callable[[list[RecordedCall]], Any], timeout: float = 5.0
    ) -> Any:
        """`wait_for` for code running on an event loop (which it must not block)."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout)

    def violations(self) -> list[str]:
        with self.lock:
            return [f"{c.method}#{c.seq}: {v}" for c in self.calls for v in c.violations]


CONFIG = web.AppKey("config", dict)


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {}
    args: dict[str, Any] = {
        k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()
    }
    for key in ("blocks", "view", "attachments", "files", "users"):
        value = args.get(key)
        if isinstance(value, str) and value[:1] in "[{":
            args[key] = json.loads(value)
    return args


def build_app(state: FakeSlackState) -> web.Application:
    app = web.Application(client_max_size=20 * 1024 * 1024)
    app[CONFIG] = {"base_url": ""}

    def ok(**payload: Any) -> web.Response:
        return web.json_response({"ok": True, **payload})

    def err(error: str) -> web.Response:
        return web.json_response({"ok": False, "error": error})

    async def api(request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        fault = state.take_fault(method)
        if fault is not None:
            if fault.drop:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.json_response(
                {"ok": False, "error": "ratelimited" if fault.status == 429 else "fatal_error"},
                status=fault.status,
                headers=headers,
            )
        raw = await request.read()
        args = {**request.query, **_parse_body(raw, request.content_type)}
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {state.token}" and args.get("token") != state.token:
            state.record(method, {**args, "_auth": "invalid"})
            return err("invalid_auth")
        state.record(method, args)
        return handle(method, args)

    def handle(method: str, args: dict[str, Any]) -> web.Response:
        if method == "auth.test":
            return ok(
                user_id="U0FORGEBOT", bot_id="B0FORGEBOT", team_id="T0SANDBOX", user="forgebot"
            )
        if method == "chat.postMessage":
            channel, ts = str(args.get("channel", "")), state.next_ts()
            message = {"ts": ts, "text": args.get("text", ""), "blocks": args.get("blocks") or []}
            with state.lock:
                state.messages[(channel, ts)] = message
            return ok(channel=channel, ts=ts, message=message)
        if method == "chat.update":
            key = (str(args.get("channel", "")), str(args.get("ts", "")))
            with state.lock:
                if key not in state.messages:
                    return err("message_not_found")
                state.messages[key] = {
                    "ts": key[1],
                    "text": args.get("text", ""),
                    "blocks": args.get("blocks") or [],
                }
            return ok(channel=key[0], ts=key[1], text=args.get("text", ""))
        if method == "chat.postEphemeral":
            return ok(message_ts=state.next_ts())
        if method == "conversations.open":
            users = args.get("users", "")
            user = users[0] if isinstance(users, list) else str(users).split(",")[0]
            return ok(channel={"id": "D" + user.lstrip("UW")})
        if method in ("views.open", "views.push", "views.update", "views.publish"):
            view = dict(args.get("view") or {})
            view_id = str(args.get("view_id") or "") or f"V{len(state.views) + 1:08d}"
            view.update(id=view_id, hash=f"h{time.monotonic_ns()}")
            with state.lock:
                state.views[view_id] = view
            return ok(view=view)
        if method == "usergroups.users.list":
            group = str(args.get("usergroup", ""))
            if group not in state.usergroups:
                return err("no_such_subteam")
            return ok(users=state.usergroups[group])
        if method == "users.info":
            user = state.users.get(str(args.get("user", "")))
            return ok(user=user) if user else err("user_not_found")
        if method == "files.getUploadURLExternal":
            file_id = f"F{len(state.uploads) + 1:08d}"
            state.uploads[file_id] = b""
            return ok(upload_url=f"{app[CONFIG]['base_url']}/upload/{file_id}", file_id=file_id)
        if method == "files.completeUploadExternal":
            files = args.get("files") or []
            return ok(files=[{"id": f.get("id"), "title": f.get("title")} for f in files])
        return ok()

    async def upload(request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if file_id not in state.uploads:
            return web.Response(status=404)
        body = await request.read()
        state.uploads[file_id] = body
        state.record("files.upload", {"file_id": file_id, "bytes": len(body)})
        return web.Response(text="OK - " + str(len(body)))

    async def response_url(request: web.Request) -> web.Response:
        body = await request.json()
        state.record("response_url", {"token": request.match_info["token"], **body})
        return web.Response(text="ok")

    app.router.add_route("*", "/api/{method}", api)
    app.router.add_post("/upload/{file_id}", upload)
    app.router.add_post("/response/{token}", response_url)
    return app


@dataclass
class RunningFakeSlack:
    server: RunningServer
    state: FakeSlackState

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_url(self) -> str:
        return self.server.url + "/api/"

    def new_response_url(self) -> str:
        return f"{self.server.url}/response/{time.monotonic_ns()}"

    def stop(self) -> None:
        self.server.stop()


def start_fake_slack(token: str = "xoxb-sandbox") -> RunningFakeSlack:
    state = FakeSlackState(token)
    app = build_app(state)
    server = serve_in_thread(app)
    app[CONFIG]["base_url"] = server.url
    return RunningFakeSlack(server, state)
