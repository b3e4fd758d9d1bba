"""Slack Socket Mode: one WebSocket to Slack instead of a public Request URL.

The protocol (https://api.slack.com/apis/socket-mode): `apps.connections.open` with the app
token (`xapp-...`) answers a `wss://` URL; Slack sends `hello` on it, then envelopes
(`{"envelope_id", "type": "slash_commands" | "interactive" | "events_api", "payload"}`), each
acknowledged by sending `{"envelope_id"[, "payload"]}` back within 3 seconds; `disconnect`
(reason `refresh_requested` or `warning`) says the connection closes soon and a new one is due.

Written here rather than taken from `slack_sdk` because its client retries forever inside
`connect()` (the process cannot be stopped while Slack is unreachable), logs a long traceback
per attempt, and hot-loops on a wrong token. This one:

- runs as a task: `close()` stops it in every state (connecting, connected, backing off);
- backs off exponentially with jitter up to a cap, one log line per failed attempt;
- stops at once, with one clear line, when Slack refuses the app token (`invalid_auth`...):
  retrying cannot help, and a pod that exits is seen (CrashLoopBackOff) where a retrying one
  is not;
- on `disconnect` opens the next connection first and keeps reading (and acknowledging) the
  old one until Slack closes it, so no envelope sent meanwhile is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

Dispatch = Callable[[str, dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any] | None]]
"""(envelope type, payload, whole envelope) -> the ack's payload (None: a bare ack)."""

REFUSED_TOKEN_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "missing_scope",
    }
)
"""Answers to apps.connections.open that retrying cannot fix."""

OLD_CONNECTION_GRACE_SECONDS = 15.0
"""How long a connection Slack asked us to leave is still read (Slack closes it after ~10 s)."""


class AppTokenRefused(Exception):
    """Slack refused the app token: the message is one line an operator can act on."""


class _Unavailable(Exception):
    """A connection attempt failed in a way worth retrying; the message is one short line."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with "equal jitter": attempt n waits between half and all of
    min(cap, base * 2**(n-1)), so replicas do not reconnect in step and never wait zero."""

    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** max(0, attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def _reason(exc: BaseException) -> str:
    """An exception as one short line: what failed, never a traceback."""
    if isinstance(exc, _Unavailable):
        return str(exc)
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc})"
    text = str(exc).splitlines()[0].strip() if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class SocketModeClient:
    """Keeps one Socket Mode connection up and hands each envelope to `dispatch`."""

    def __init__(
        self,
        app_token: str,
        api_url: str,
        dispatch: Dispatch,
        *,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        heartbeat: float = 20.0,
        rng: random.Random | None = None,
    ) -> None:
        self._token = app_token
        self._open_url = api_url.rstrip("/") + "/apps.connections.open"
        self._dispatch = dispatch
        self.backoff = backoff or Backoff()
        self._timeout = aiohttp.ClientTimeout(total=connect_timeout)
        self._heartbeat = heartbeat
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._readers: set[asyncio.Task[bool]] = set()
        self.connected = asyncio.Event()
        """Set while a connection has said hello; tests and /readyz may look at it."""
        self.connections = 0
        """Connections that said hello since the start."""

    # --- life cycle -------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Run in the background; the task ends with `AppTokenRefused` if Slack refuses the
        token, and otherwise only when `close()` cancels it."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="socket-mode")
        return self._task

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def close(self, grace: float = 2.0) -> None:
        """Stop receiving, in whatever state; envelopes being handled get `grace` seconds."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AppTokenRefused):
                await self._task
        for reader in list(self._readers):
            reader.cancel()
        if self._readers:
            await asyncio.gather(*self._readers, return_exceptions=True)
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=grace)
        self.connected.clear()

    # --- the connection loop ----------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                try:
                    url = await self._open(session)
                    ws = await session.ws_connect(
                        url, heartbeat=self._heartbeat, timeout=aiohttp.ClientWSTimeout(ws_close=2)
                    )
                except AppTokenRefused:
                    raise
                except (TimeoutError, aiohttp.ClientError, OSError, _Unavailable) as exc:
                    failures += 1
                    delay = self.backoff.delay(failures, self._rng)
                    log.warning(
                        "Socket Mode: cannot connect to Slack (%s); attempt %d, retrying in %.1fs",
                        _reason(exc),
                        failures,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                leave = asyncio.Event()
                reader = asyncio.create_task(self._read(ws, leave), name="socket-mode-reader")
                self._readers.add(reader)
                reader.add_done_callback(self._readers.discard)
                # Either Slack asks us to leave (the reader goes on with the old connection
                # while the loop opens the next one) or the connection ends.
                left = asyncio.create_task(leave.wait())
                try:
                    await asyncio.wait({reader, left}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    left.cancel()
                if reader.done():
                    said_hello = reader.result() if not reader.cancelled() else False
                    self.connected.clear()
                    if said_hello:
                        failures = 0
                        log.info("Socket Mode: the connection closed; reconnecting")
                        continue
                    failures += 1
                    delay = self.backoff.delay(failures, self._rng)
                    log.warning(
                        "Socket Mode: the connection closed before hello; attempt %d, "
                        "retrying in %.1fs",
                        failures,
                        delay,
                    )
                    await asyncio.sleep(delay)
                else:
                    failures = 0

    async def _open(self, session: aiohttp.ClientSession) -> str:
        async with session.post(
            self._open_url, headers={"Authorization": f"Bearer {self._token}"}
        ) as response:
            if response.status == 429 or response.status >= 500:
                raise _Unavailable(f"apps.connections.open answered HTTP {response.status}")
            try:
                body = await response.json(content_type=None)
            except ValueError:
                raise _Unavailable(
                    f"apps.connections.open answered HTTP {response.status}, not JSON"
                ) from None
        if not isinstance(body, dict):
            raise _Unavailable("apps.connections.open answered an unexpected shape")
        if not body.get("ok"):
            error = str(body.get("error") or "unknown_error")
            if error in REFUSED_TOKEN_ERRORS:
                raise AppTokenRefused(
                    f"Slack refused SLACK_APP_TOKEN ({error}): use the app-level token "
                    "(xapp-...) with the connections:write scope, from the app's Basic "
                    "Information page"
                )
            raise _Unavailable(f"apps.connections.open failed: {error}")
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise _Unavailable("apps.connections.open answered no WebSocket URL")
        return url

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, leave: asyncio.Event) -> bool:
        """Read one connection until it closes; True if it said hello. After `disconnect` it
        is read for a bounded time more (Slack may still send on it) and then closed."""
        said_hello = False
        try:
            async with asyncio.timeout(None) as limit:
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    try:
                        data = json.loads(message.data)
                    except ValueError:
                        log.warning("Socket Mode: ignored a frame that is not JSON")
                        continue
                    if not isinstance(data, dict):
                        continue
                    kind = data.get("type")
                    if kind == "hello":
                        said_hello = True
                        self.connections += 1
                        self.connected.set()
                        log.info("Socket Mode: connected to Slack")
                    elif kind == "disconnect":
                        log.info(
                            "Socket Mode: Slack asked to reconnect (%s)",
                            data.get("reason", "no reason"),
                        )
                        self.connected.clear()
                        leave.set()
                        limit.reschedule(
                            asyncio.get_running_loop().time() + OLD_CONNECTION_GRACE_SECONDS
                        )
                    elif isinstance(data.get("envelope_id"), str):
                        self._handle(ws, data)
        except TimeoutError:
            pass
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("Socket Mode: the connection failed (%s)", _reason(exc))
        finally:
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.shield(ws.close())
        return said_hello

    def _handle(self, ws: aiohttp.ClientWebSocketResponse, envelope: dict[str, Any]) -> None:
        task = asyncio.create_task(self._answer(ws, envelope))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, envelope: dict[str, Any]) -> None:
        envelope_id = envelope["envelope_id"]
        payload = envelope.get("payload")
        response: dict[str, Any] | None = None
        if isinstance(payload, dict):
            response = await self._dispatch(str(envelope.get("type")), payload, envelope)
        else:
            log.warning("Socket Mode: acknowledged an envelope without a payload object")
        ack: dict[str, Any] = {"envelope_id": envelope_id}
        if response:
            ack["payload"] = response
        try:
            await ws.send_str(json.dumps(ack))
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            log.warning("Socket Mode: could not acknowledge an envelope (%s)", _reason(exc))
