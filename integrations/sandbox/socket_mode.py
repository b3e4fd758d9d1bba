"""A loopback Slack Socket Mode server, part of the fake Slack Web API.

Speaks Slack's protocol (https://api.slack.com/apis/socket-mode):

- `POST /api/apps.connections.open` with `Authorization: Bearer <app token>` answers
  `{"ok": true, "url": "ws://127.0.0.1:PORT/socket-mode?ticket=..."}`, or `invalid_auth` for any
  other token (recorded like every Web API call, so tests count the attempts);
- on the WebSocket it sends `{"type": "hello", ...}` first;
- `send()` delivers an envelope (`slash_commands`, `interactive`, `events_api`) with a fresh
  `envelope_id` on the newest connection and records the ack the client sends back
  (`{"envelope_id", "payload"?}`); an ack for an unknown id is recorded as a protocol error;
- `disconnect(reason)` sends `{"type": "disconnect", "reason": ...}` (`refresh_requested`,
  `warning`) and, like Slack, closes that connection `close_after` seconds later (Slack: ~10 s),
  envelopes may still be sent on it meanwhile.

Tests run on another thread and loop than the server: every method here is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web

APP_TOKEN = "xapp-1-A0FORGEBOT-sandbox"
OPEN_METHOD = "apps.connections.open"
EnvelopeType = Literal["slash_commands", "interactive", "events_api"]


@dataclass
class SocketConnection:
    number: int
    ws: web.WebSocketResponse
    opened_at: float
    closed: bool = False
    disconnect_sent: str | None = None


@dataclass
class SentEnvelope:
    envelope_id: str
    type: str
    payload: dict[str, Any]
    connection: int
    ack: dict[str, Any] | None = None
    ack_connection: int | None = None


@dataclass
class SocketModeFake:
    app_token: str = APP_TOKEN
    lock: threading.RLock = field(default_factory=threading.RLock)
    loop: asyncio.AbstractEventLoop | None = None
    ws_url: str = ""
    connections: list[SocketConnection] = field(default_factory=list)
    envelopes: dict[str, SentEnvelope] = field(default_factory=dict)
    protocol_errors: list[str] = field(default_factory=list)
    opens: int = 0
    """apps.connections.open calls answered (good token or not)."""
    _changed: threading.Condition = field(init=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self.lock)

    def reset(self) -> None:
        with self.lock:
            self.connections.clear()  # a bot still connected is being stopped: forget it
            self.envelopes.clear()
            self.protocol_errors.clear()
            self.opens = 0

    # --- server side (on the fake's loop) ---------------------------------------------------
    def open_connection(self, authorization: str | None) -> dict[str, Any]:
        with self.lock:
            self.opens += 1
            self._changed.notify_all()
        if authorization != f"Bearer {self.app_token}":
            return {"ok": False, "error": "invalid_auth"}
        return {"ok": True, "url": f"{self.ws_url}?ticket={secrets.token_urlsafe(8)}"}

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        with self.lock:
            connection = SocketConnection(next(self._numbers), ws, time.monotonic())
            self.connections.append(connection)
            self._changed.notify_all()
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "sandbox", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A0FORGEBOT"},
            }
        )
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._acked(connection, message.data)
        finally:
            with self.lock:
                connection.closed = True
                self._changed.notify_all()
        return ws

    def _acked(self, connection: SocketConnection, text: str) -> None:
        with self.lock:
            try:
                ack = json.loads(text)
            except ValueError:
                self.protocol_errors.append(f"not JSON: {text[:80]!r}")
                return
            sent = (
                self.envelopes.get(str(ack.get("envelope_id"))) if isinstance(ack, dict) else None
            )
            if sent is None:
                self.protocol_errors.append(f"ack for an unknown envelope: {text[:80]!r}")
            elif sent.ack is not None:
                self.protocol_errors.append(f"envelope acknowledged twice: {sent.envelope_id}")
            else:
                sent.ack, sent.ack_connection = ack, connection.number
            self._changed.notify_all()

    # --- test side (any thread) -------------------------------------------------------------
    def _on_loop(self, make: Callable[[], Any]) -> Any:
        assert self.loop is not None, "the fake Slack is not running"
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(10)

    def _live(self) -> SocketConnection:
        with self.lock:
            live = [c for c in self.connections if not c.closed and c.disconnect_sent is None]
        if not live:
            raise AssertionError("no Socket Mode connection is open")
        return live[-1]

    def send(
        self, envelope_type: EnvelopeType, payload: dict[str, Any], *, on: int | None = None
    ) -> str:
        """Deliver an envelope on connection `on` (default: the newest live one); its id."""
        with self.lock:
            connection = (
                self._live() if on is None else next(c for c in self.connections if c.number == on)
            )
            envelope_id = f"{next(self._ids):04d}-{secrets.token_hex(6)}"
            self.envelopes[envelope_id] = SentEnvelope(
                envelope_id, envelope_type, payload, connection.number
            )
        envelope = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": envelope_type != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        self._on_loop(lambda: connection.ws.send_json(envelope))
        return envelope_id

    def send_http_body(self, body: bytes, *, on: int | None = None) -> str:
        """Deliver what Slack would POST to a Request URL (the bodies `slack_payloads` builds)
        as the envelope Socket Mode carries it."""
        text = body.decode("utf-8")
        if text.startswith("{"):
            return self.send("events_api", json.loads(text), on=on)
        fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
        if set(fields) == {"payload"}:
            return self.send("interactive", json.loads(fields["payload"]), on=on)
        return self.send("slash_commands", fields, on=on)

    def disconnect(self, reason: str = "refresh_requested", *, close_after: float = 10.0) -> int:
        """Ask the client on the newest connection to reconnect; its number. The fake closes
        that connection `close_after` seconds later (if the client has not)."""
        connection = self._live()
        with self.lock:
            connection.disconnect_sent = reason

        async def send_then_close() -> None:
            await connection.ws.send_json(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": "sandbox"}}
            )
            loop = asyncio.get_running_loop()
            loop.call_later(close_after, lambda: loop.create_task(connection.ws.close()))

        self._on_loop(send_then_close)
        return connection.number

    def close_all(self) -> None:
        """Drop every connection (a Slack-side failure): the client must reconnect."""
        with self.lock:
            live = [c for c in self.connections if not c.closed]

        async def close() -> None:
            for connection in live:
                await connection.ws.close()

        self._on_loop(close)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"fake Socket Mode: nothing matched within {timeout}s")
                self._changed.wait(remaining)

    async def until(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        return await asyncio.to_thread(self.wait_for, predicate, timeout)

    async def until_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The client's ack of `envelope_id` (bounded wait)."""
        ack: dict[str, Any] = await self.until(
            lambda: self.envelopes[envelope_id].ack, timeout=timeout
        )
        return ack

    async def until_connected(self, count: int = 1, timeout: float = 10.0) -> SocketConnection:
        """The newest connection once `count` were opened since the start (or reset)."""

        def opened() -> SocketConnection | None:
            live = [c for c in self.connections if not c.closed]
            return live[-1] if len(self.connections) >= count and live else None

        connection: SocketConnection = await self.until(opened, timeout=timeout)
        return connection


def add_routes(app: web.Application, fake: SocketModeFake) -> None:
    """Register before the Web API's `/api/{method}` route (aiohttp matches in order)."""

    async def connections_open(request: web.Request) -> web.Response:
        return web.json_response(fake.open_connection(request.headers.get("Authorization")))

    async def on_startup(app: web.Application) -> None:
        fake.loop = asyncio.get_running_loop()

    async def on_shutdown(app: web.Application) -> None:
        with fake.lock:
            live = [c for c in fake.connections if not c.closed]
        for connection in live:
            with contextlib.suppress(Exception):
                await connection.ws.close()

    app.router.add_post(f"/api/{OPEN_METHOD}", connections_open)
    app.router.add_get("/socket-mode", fake.serve)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
