"""Retry policy for the Slack Web API client: the waits Slack asks for, and bounded backoff.

slack_sdk's own rate-limit handler only understands `Retry-After: <seconds>`; HTTP also
allows an HTTP-date there (and proxies in front of Slack-compatible APIs send one), so the
handler here reads both. Server errors and dropped connections back off exponentially with
jitter, so many replicas do not retry in lockstep.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from aiohttp import ClientOSError, ServerConnectionError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from core.metrics import SLACK_RETRIES

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER_SECONDS = 1.0
MAX_RETRY_AFTER_SECONDS = 60.0
"""A longer hint is capped: a message parked for minutes is worse than a second 429."""

Sleep = Callable[[float], Awaitable[None]]


def parse_retry_after(
    value: str | None, now: float, *, cap: float = MAX_RETRY_AFTER_SECONDS
) -> float:
    """Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP-date.

    `now` is the current Unix time (for the HTTP-date form). Missing or unreadable values
    mean Slack's usual one second; the result is always within [0, cap].
    """
    if value is None or not value.strip():
        return min(DEFAULT_RETRY_AFTER_SECONDS, cap)
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return min(DEFAULT_RETRY_AFTER_SECONDS, cap)
        if when.tzinfo is None:  # RFC 9110 dates are GMT even when the zone is missing
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return min(DEFAULT_RETRY_AFTER_SECONDS, cap)
    return min(max(seconds, 0.0), cap)


def _header(response: HttpResponse, name: str) -> str | None:
    wanted = name.lower()
    for key, values in response.headers.items():
        if key.lower() == wanted:
            if isinstance(values, list):
                return values[0] if values else None
            return str(values)
    return None


def method_of(request: HttpRequest) -> str:
    """`chat.postMessage` from `.../api/chat.postMessage?...` (for logs: never the body)."""
    return urlsplit(request.url).path.rsplit("/", 1)[-1] or "?"


class ExponentialBackoff(RetryIntervalCalculator):
    """base * 2^attempt capped at `cap`, with "equal jitter": between half and all of it."""

    def __init__(
        self, base: float = 0.5, cap: float = 8.0, rng: Callable[[], float] = random.random
    ) -> None:
        if base <= 0 or cap <= 0:
            raise ValueError("base and cap must be positive")
        self.base = base
        self.cap = cap
        self._rng = rng

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** max(current_attempt, 0))
        return ceiling / 2 + self._rng() * ceiling / 2


class RateLimitRetryHandler(AsyncRetryHandler):
    """Retries HTTP 429 after the server's `Retry-After`, whichever form it takes."""

    def __init__(
        self,
        max_retry_count: int,
        *,
        wall_clock: Callable[[], float] = time.time,
        max_wait: float = MAX_RETRY_AFTER_SECONDS,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._wall_clock = wall_clock
        self._max_wait = max_wait
        self._sleep = sleep
        self._rng = rng

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code == 429

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        header = _header(response, "Retry-After") if response is not None else None
        wait = parse_retry_after(header, self._wall_clock(), cap=self._max_wait)
        # Never earlier than asked; a little later so replicas do not retry in lockstep.
        wait += self._rng() * min(0.25, wait * 0.1 + 0.05)
        SLACK_RETRIES.labels(method_of(request), "rate_limited").inc()
        log.info(
            "Slack rate-limited %s; retry %d in %.2fs",
            method_of(request),
            state.current_attempt + 1,
            wait,
        )
        state.next_attempt_requested = True
        await self._sleep(wait)
        state.increment_current_attempt()


class _BackoffHandler(AsyncRetryHandler):
    def __init__(
        self, max_retry_count: int, backoff: RetryIntervalCalculator, sleep: Sleep
    ) -> None:
        super().__init__(max_retry_count=max_retry_count, interval_calculator=backoff)
        self._sleep = sleep

    def _why(self, response: HttpResponse | None, error: Exception | None) -> str:
        if response is not None:
            return f"HTTP {response.status_code}"
        return type(error).__name__ if error is not None else "unknown"

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        wait = self.interval_calculator.calculate_sleep_duration(state.current_attempt)
        reason = "server_error" if response is not None else "connection"
        SLACK_RETRIES.labels(method_of(request), reason).inc()
        log.info(
            "Slack call %s failed (%s); retry %d in %.2fs",
            method_of(request),
            self._why(response, error),
            state.current_attempt + 1,
            wait,
        )
        state.next_attempt_requested = True
        await self._sleep(wait)
        state.increment_current_attempt()


class ServerErrorRetryHandler(_BackoffHandler):
    """Retries any 5xx answer (slack_sdk's built-in one only knows 500 and 503)."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code <= 599


CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    ServerConnectionError,  # includes ServerDisconnectedError: the peer dropped the connection
    ClientOSError,  # connection reset or refused
)


class ConnectionErrorRetryHandler(_BackoffHandler):
    """Retries dropped, reset and refused connections.

    Timeouts are not retried: the request may have reached Slack, and posting a message
    twice is worse than reporting a failure.
    """

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return isinstance(error, CONNECTION_ERRORS)


def retry_handlers(
    max_retries: int = 4,
    *,
    backoff: RetryIntervalCalculator | None = None,
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
    wall_clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
) -> list[AsyncRetryHandler]:
    """The handlers in the order slack_sdk consults them; one retry budget is shared."""
    interval = backoff or ExponentialBackoff()
    return [
        RateLimitRetryHandler(
            max_retries, wall_clock=wall_clock, max_wait=max_retry_after, sleep=sleep
        ),
        ServerErrorRetryHandler(max_retries, interval, sleep),
        ConnectionErrorRetryHandler(max_retries, interval, sleep),
    ]
