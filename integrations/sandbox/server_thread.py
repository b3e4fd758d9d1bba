"""Run an aiohttp application on 127.0.0.1 in a thread of its own.

The sandbox fakes (Slack Web API, Kubernetes API server) run on their own event loop so
that blocking clients (the official `kubernetes` client, boto3) and the bot's own loop can
talk to them from anywhere without deadlocking a shared loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class RunningServer:
    url: str
    port: int
    loop: asyncio.AbstractEventLoop
    _runner: web.AppRunner
    _thread: threading.Thread
    _stopped: threading.Event = field(default_factory=threading.Event)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop and wait for its result (for state inspection)."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(10)
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop)
        try:
            future.result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


def serve_in_thread(
    app: web.Application, *, host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Start `app` on host:port (0 picks a free port) in a daemon thread; returns once listening."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("sandbox servers only bind loopback")
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr,attr-defined]
        state["runner"] = runner
        state["port"] = sockets[0].getsockname()[1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            state["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name="sandbox-server", daemon=True)
    thread.start()
    ready.wait(15)
    if "error" in state:
        raise RuntimeError(f"sandbox server failed to start: {state['error']}") from state["error"]
    bound = int(state["port"])
    return RunningServer(
        url=f"http://{host}:{bound}", port=bound, loop=loop, _runner=state["runner"], _thread=thread
    )
