"""A loopback server speaking Cost Explorer's JSON 1.1 protocol, for answers moto cannot give:
AccessDenied, throttling, DataUnavailable, forecasts, cost allocation tag status, slowness.

botocore talks to it over real HTTP and parses its answers (including `__type` error bodies)
exactly as it would AWS's, so the gateway's error mapping is tested against botocore itself.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from integrations.sandbox.server_thread import RunningServer, serve_in_thread

TARGET_PREFIX = "AWSInsightsIndexService."
CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Mapping[str, Any] = field(default_factory=dict)
    delay_seconds: float = 0.0

    @classmethod
    def ok(cls, body: Mapping[str, Any]) -> Reply:
        return cls(200, body)

    @classmethod
    def error(cls, error_type: str, message: str, status: int = 400) -> Reply:
        return cls(status, {"__type": error_type, "message": message})

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        return cls(200, {}, seconds)


@dataclass(frozen=True)
class ReceivedRequest:
    operation: str
    body: dict[str, Any]
    authorization: str | None


class CostExplorerStub:
    """Scripted replies per operation: queued ones first, then the operation's standing one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, deque[Reply]] = {}
        self._standing: dict[str, Reply] = {}
        self._received: list[ReceivedRequest] = []
        self._in_flight = 0
        self.most_in_flight = 0

    def always(self, operation: str, reply: Reply) -> None:
        with self._lock:
            self._standing[operation] = reply

    def then(self, operation: str, *replies: Reply) -> None:
        with self._lock:
            self._queued.setdefault(operation, deque()).extend(replies)

    def received(self, operation: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self._received if operation is None or r.operation == operation]

    def _next(self, operation: str) -> Reply:
        with self._lock:
            queue = self._queued.get(operation)
            if queue:
                return queue.popleft()
            return self._standing.get(
                operation, Reply.error("UnknownOperationException", f"no reply for {operation}")
            )

    async def handle(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        operation = target.removeprefix(TARGET_PREFIX)
        body = json.loads(await request.read() or b"{}")
        with self._lock:
            self._received.append(
                ReceivedRequest(operation, body, request.headers.get("Authorization"))
            )
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        reply = self._next(operation)
        try:
            if reply.delay_seconds:
                # The server being slow is the behaviour under test, not the test waiting.
                await asyncio.sleep(reply.delay_seconds)
        finally:
            with self._lock:
                self._in_flight -= 1
        return web.Response(
            status=reply.status,
            body=json.dumps(reply.body).encode(),
            headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": "stub-request"},
        )


@dataclass
class RunningStub:
    stub: CostExplorerStub
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url


def start_cost_explorer_stub() -> Iterator[RunningStub]:
    stub = CostExplorerStub()
    app = web.Application()
    app.router.add_post("/", stub.handle)
    server = serve_in_thread(app)
    try:
        yield RunningStub(stub, server)
    finally:
        server.stop()
