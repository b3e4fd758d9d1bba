"""Outgoing Slack: a Web API client that retries the way Slack asks, and an outbox that paces.

- 429s are retried after `Retry-After` (seconds or an HTTP-date); 5xx and dropped connections
  are retried with exponential backoff and jitter; attempts are bounded.
- `SlackOutbox` sends at most about one message per second to a channel (queued, never
  dropped) and coalesces updates of one message, so a rollout's progress message updated ten
  times a second costs at most one `chat.update` per second: only the latest content matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from aiohttp import ClientOSError, ServerConnectionError, ServerDisconnectedError
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.jitter import RandomJitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from integrations.slack.blockkit import MESSAGE_BLOCKS, paginate_blocks

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 60.0


def parse_retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait, from `Retry-After` given as seconds or as an HTTP-date."""
    if not value:
        return 1.0
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return 1.0
    return min(max(when - (now if now is not None else time.time()), 0.0), MAX_RETRY_AFTER_SECONDS)


class RetryAfterHandler(AsyncRetryHandler):
    """Retries 429s after the server's `Retry-After`, whichever form it takes."""

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
        header = None
        if response is not None:
            for key, values in response.headers.items():
                if key.lower() == "retry-after" and values:
                    header = values[0] if isinstance(values, list) else str(values)
        state.next_attempt_requested = True
        await asyncio.sleep(parse_retry_after(header) + random.random() * 0.1)
        state.increment_current_attempt()


def build_web_client(
    token: str, *, base_url: str, timeout: int = 10, max_retries: int = 4
) -> AsyncWebClient:
    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.25, jitter=RandomJitter())
    client = AsyncWebClient(
        token=token or None,
        base_url=base_url,
        timeout=timeout,
        logger=logging.getLogger("slack_sdk.web"),
        retry_handlers=[
            RetryAfterHandler(max_retry_count=max_retries),
            AsyncServerErrorRetryHandler(max_retry_count=max_retries, interval_calculator=backoff),
            AsyncConnectionErrorRetryHandler(
                max_retry_count=max_retries,
                interval_calculator=backoff,
                error_types=[ServerConnectionError, ServerDisconnectedError, ClientOSError],
            ),
        ],
    )
    return client


class SlackGateway(Protocol):
    """What services need from Slack; the outbox implements it, tests may supply another."""

    async def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> str: ...

    async def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None: ...

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None: ...

    async def dm(
        self, user: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> tuple[str, str]: ...


@dataclass
class _Pending:
    text: str
    blocks: list[dict[str, Any]] | None


class SlackOutbox:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        min_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.min_interval = min_interval
        self._monotonic = monotonic
        self._channel_locks: dict[str, asyncio.Lock] = {}
        self._last_sent: dict[str, float] = {}
        self._pending_updates: dict[tuple[str, str], _Pending] = {}
        self._flushers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._dm_channels: dict[str, str] = {}

    async def _turn(self, channel: str) -> asyncio.Lock:
        lock = self._channel_locks.setdefault(channel, asyncio.Lock())
        await lock.acquire()
        wait = self._last_sent.get(channel, -1e9) + self.min_interval - self._monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return lock

    def _sent(self, channel: str, lock: asyncio.Lock) -> None:
        self._last_sent[channel] = self._monotonic()
        lock.release()

    async def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> str:
        """Post (paginating over Slack's block limit); returns the first message's ts."""
        pages = paginate_blocks(blocks, MESSAGE_BLOCKS) if blocks else [None]
        first_ts = ""
        for page in pages:
            lock = await self._turn(channel)
            try:
                response = await self.client.chat_postMessage(
                    channel=channel, text=text, blocks=page
                )
            finally:
                self._sent(channel, lock)
            first_ts = first_ts or str(response.get("ts", ""))
        return first_ts

    async def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """Queue an update; bursts to one message collapse into its latest content."""
        key = (channel, ts)
        self._pending_updates[key] = _Pending(text, blocks[:MESSAGE_BLOCKS] if blocks else None)
        if key not in self._flushers or self._flushers[key].done():
            self._flushers[key] = asyncio.create_task(self._flush_one(key))

    async def _flush_one(self, key: tuple[str, str]) -> None:
        channel, ts = key
        while key in self._pending_updates:
            lock = await self._turn(channel)
            pending = self._pending_updates.pop(key, None)
            try:
                if pending is not None:
                    await self.client.chat_update(
                        channel=channel, ts=ts, text=pending.text, blocks=pending.blocks
                    )
            except SlackApiError as exc:
                log.warning(
                    "chat.update failed for a message in %s: %s", channel, exc.response.get("error")
                )
            finally:
                self._sent(channel, lock)

    async def flush(self) -> None:
        """Wait until every queued update has been sent (tests, shutdown)."""
        while any(not t.done() for t in self._flushers.values()):
            await asyncio.gather(
                *[t for t in self._flushers.values() if not t.done()], return_exceptions=True
            )

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        await self.client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)

    async def dm(
        self, user: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> tuple[str, str]:
        channel = self._dm_channels.get(user)
        if channel is None:
            opened = await self.client.conversations_open(users=[user])
            channel = str(opened["channel"]["id"])
            self._dm_channels[user] = channel
        return channel, await self.post(channel, text, blocks)

    async def upload_file(
        self, channel: str, filename: str, content: bytes, title: str, initial_comment: str = ""
    ) -> None:
        await self.client.files_upload_v2(
            channel=channel,
            filename=filename,
            content=content,
            title=title,
            initial_comment=initial_comment,
        )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush()
        for task in self._flushers.values():
            task.cancel()
