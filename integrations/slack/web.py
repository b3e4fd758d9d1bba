"""Outgoing Slack: a Web API client that retries the way Slack asks, and an outbox that paces.

- `build_web_client` retries 429s after `Retry-After` (seconds or an HTTP-date), and 5xx
  answers and dropped connections with exponential backoff and jitter, within one bounded
  retry budget. Its logger never logs request or response bodies (or tokens).
- `SlackOutbox` is what services post through (via the `SlackGateway` protocol): at most
  about one message per second goes to a channel (queued, never dropped), and updates of one
  message coalesce, so a rollout's progress message updated ten times a second costs at most
  one `chat.update` per second: only the latest content matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from core import faults
from core.block_limits import MESSAGE_BLOCKS, paginate_blocks
from integrations.slack.retry import MAX_RETRY_AFTER_SECONDS, ExponentialBackoff, retry_handlers

log = logging.getLogger(__name__)

SLACK_API_URL = "https://slack.com/api/"
Blocks = Sequence[dict[str, Any]]


class _BodylessLogger(logging.Logger):
    """slack_sdk formats whole request and response bodies (message text, user input) into
    debug lines whenever its logger's *own* level is DEBUG or unset; this one's never is."""

    def setLevel(self, level: int | str) -> None:
        resolved = logging.getLevelName(level) if isinstance(level, str) else level
        super().setLevel(max(logging.INFO, resolved if isinstance(resolved, int) else 0))


@functools.cache
def sdk_logger() -> logging.Logger:
    """The logger handed to slack_sdk: INFO and up, propagating to `integrations.slack.web`."""
    logger = _BodylessLogger(f"{__name__}.sdk", logging.INFO)
    logger.parent = log
    return logger


def build_web_client(
    token: str,
    base_url: str = SLACK_API_URL,
    *,
    timeout: int = 10,
    max_retries: int = 4,
    backoff_base: float = 0.5,
    backoff_cap: float = 8.0,
    max_retry_after: float = MAX_RETRY_AFTER_SECONDS,
    wall_clock: Callable[[], float] = time.time,
    session: aiohttp.ClientSession | None = None,
) -> AsyncWebClient:
    """An `AsyncWebClient` for `base_url` (`SLACK_API_URL` overrides it: the sandbox, a proxy)."""
    return AsyncWebClient(
        token=token or None,
        base_url=base_url,
        timeout=timeout,
        session=session,
        logger=sdk_logger(),
        retry_handlers=retry_handlers(
            max_retries,
            backoff=ExponentialBackoff(backoff_base, backoff_cap),
            max_retry_after=max_retry_after,
            wall_clock=wall_clock,
        ),
    )


def shared_session(timeout: float = 10) -> aiohttp.ClientSession:
    """One HTTP session for every Web API call, so connections to Slack are kept alive and
    reused (call inside the running loop; close it at shutdown). Without one, slack_sdk opens
    a session, and a TLS connection, per call: a sweep telling 2,000 owners paid 4,000
    handshakes."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))


class SlackGateway(Protocol):
    """What services need from Slack; `SlackOutbox` implements it, tests may supply another."""

    async def post(self, channel: str, text: str, blocks: Blocks | None = None) -> str:
        """Post a message; returns its ts (the first one's, if it took several)."""
        ...

    async def update(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None:
        """Replace a message's content (eventually; bursts coalesce into the latest)."""
        ...

    async def delivered(self, channel: str, ts: str) -> None:
        """Wait until what `update` queued for this message has been sent."""
        ...

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Blocks | None = None
    ) -> None: ...

    async def dm(self, user: str, text: str, blocks: Blocks | None = None) -> tuple[str, str]:
        """Message a user directly; returns (DM channel, ts)."""
        ...

    async def upload_file(
        self,
        channel: str,
        filename: str,
        content: bytes | str,
        title: str,
        initial_comment: str = "",
    ) -> str:
        """Share a file in a channel; returns the file id."""
        ...


class ChannelPacer:
    """At most one send per `min_interval` seconds to each channel, in the order asked.

    The interval runs from the end of one send to the start of the next, so retries and
    slow answers never squeeze two messages into one second as Slack sees them.
    """

    def __init__(
        self,
        min_interval: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.min_interval = min_interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_done: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def turn(self, channel: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            last = self._last_done.get(channel)
            while last is not None:
                wait = last + self.min_interval - self._monotonic()
                if wait <= 0:
                    break
                await self._sleep(wait)
            try:
                yield
            finally:
                self._last_done[channel] = self._monotonic()


@dataclass
class _Content:
    text: str
    blocks: list[dict[str, Any]] | None


def fit_one_message(blocks: Blocks | None) -> list[dict[str, Any]] | None:
    """Blocks for a message that cannot be split (an update, an ephemeral): the overflow is
    replaced by a note rather than making Slack refuse the whole message."""
    if blocks is None:
        return None
    if len(blocks) <= MESSAGE_BLOCKS:
        return list(blocks)
    hidden = len(blocks) - (MESSAGE_BLOCKS - 1)
    note = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"… {hidden} more not shown"}],
    }
    return [*blocks[: MESSAGE_BLOCKS - 1], note]


Observer = Callable[[str, str], None]
"""Called with (Slack method, outcome: "ok" or Slack's error code) after each call."""


class SlackOutbox:
    """The bot's way out to Slack: paced per channel, updates coalesced, never a token logged."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        min_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observe: Observer | None = None,
    ) -> None:
        self.client = client
        self.pacer = ChannelPacer(min_interval, monotonic=monotonic, sleep=sleep)
        self._observe = observe or (lambda method, outcome: None)
        self._pending: dict[tuple[str, str], _Content] = {}
        self._flushers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._dm_channels: dict[str, str] = {}

    async def _call(self, method: str, call: Awaitable[AsyncSlackResponse]) -> AsyncSlackResponse:
        try:
            response = await call
        except SlackApiError as exc:
            self._observe(method, str(exc.response.get("error") or "error"))
            raise
        except Exception:
            self._observe(method, "unreachable")
            raise
        self._observe(method, "ok")
        return response

    async def post(
        self,
        channel: str,
        text: str,
        blocks: Blocks | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str:
        """Post, as several messages when the blocks exceed Slack's 50; returns the first ts."""
        pages: list[list[dict[str, Any]] | None] = (
            list(paginate_blocks(blocks, MESSAGE_BLOCKS)) if blocks else [None]
        )
        first_ts = ""
        for number, page in enumerate(pages, 1):
            page_text = text if number == 1 else f"{text} ({number}/{len(pages)})"
            async with self.pacer.turn(channel):
                response = await self._call(
                    "chat.postMessage",
                    self.client.chat_postMessage(
                        channel=channel, text=page_text, blocks=page, thread_ts=thread_ts
                    ),
                )
            first_ts = first_ts or str(response.get("ts", ""))
            faults.point("slack.post")
        return first_ts

    async def update(self, channel: str, ts: str, text: str, blocks: Blocks | None = None) -> None:
        """Queue new content for a message; returns at once. Use `flush()` to wait."""
        key = (channel, ts)
        self._pending[key] = _Content(text, fit_one_message(blocks))
        flusher = self._flushers.get(key)
        if flusher is None or flusher.done():
            self._flushers[key] = asyncio.create_task(
                self._deliver_updates(key), name=f"slack-update-{channel}-{ts}"
            )

    async def _deliver_updates(self, key: tuple[str, str]) -> None:
        channel, ts = key
        try:
            while key in self._pending:
                async with self.pacer.turn(channel):
                    # Taken only now, at our turn: whatever arrived while we waited is newer.
                    content = self._pending.pop(key)
                    try:
                        await self._call(
                            "chat.update",
                            self.client.chat_update(
                                channel=channel, ts=ts, text=content.text, blocks=content.blocks
                            ),
                        )
                    except SlackApiError as exc:
                        log.warning(
                            "chat.update of a message in %s failed: %s",
                            channel,
                            exc.response.get("error"),
                        )
                    except Exception as exc:
                        log.warning(
                            "chat.update of a message in %s failed: %s", channel, type(exc).__name__
                        )
        finally:
            if self._flushers.get(key) is asyncio.current_task():
                del self._flushers[key]

    async def delivered(self, channel: str, ts: str) -> None:
        """Wait until the updates queued for one message have been sent: an operation's outcome
        must reach Slack before the operation is recorded finished, or a crash in between
        loses it (nothing re-runs a finished operation)."""
        key = (channel, ts)
        while (flusher := self._flushers.get(key)) is not None and not flusher.done():
            await asyncio.wait({flusher})  # never cancels the flusher itself

    @property
    def busy(self) -> bool:
        """Updates are queued or being sent."""
        return any(not task.done() for task in self._flushers.values())

    async def flush(self) -> None:
        """Wait until every queued update has been sent (tests, shutdown)."""
        while self._flushers:
            await asyncio.gather(*list(self._flushers.values()), return_exceptions=True)
            # A task cancelled before it started never ran its own clean-up.
            for key, task in list(self._flushers.items()):
                if task.done():
                    del self._flushers[key]

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Blocks | None = None
    ) -> None:
        # Not paced: ephemeral replies are answers to one person and are not channel messages.
        await self._call(
            "chat.postEphemeral",
            self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, blocks=fit_one_message(blocks)
            ),
        )

    async def dm_channel(self, user: str) -> str:
        """The id of the bot's DM with `user` (opened once, then remembered)."""
        channel = self._dm_channels.get(user)
        if channel is None:
            opened = await self._call(
                "conversations.open", self.client.conversations_open(users=[user])
            )
            channel = str(opened["channel"]["id"])
            self._dm_channels[user] = channel
        return channel

    async def dm(self, user: str, text: str, blocks: Blocks | None = None) -> tuple[str, str]:
        channel = await self.dm_channel(user)
        faults.point("slack.dm")  # the fault suite kills here: before a DM is posted
        return channel, await self.post(channel, text, blocks)

    async def upload_file(
        self,
        channel: str,
        filename: str,
        content: bytes | str,
        title: str,
        initial_comment: str = "",
    ) -> str:
        # Sharing a file posts a message into the channel, so it waits its turn like one.
        async with self.pacer.turn(channel):
            response = await self._call(
                "files.completeUploadExternal",
                self.client.files_upload_v2(
                    channel=channel,
                    filename=filename,
                    content=content,
                    title=title,
                    initial_comment=initial_comment or None,
                ),
            )
        file = response.get("file") or {}
        return str(file.get("id", "")) if isinstance(file, dict) else ""

    async def close(self, timeout: float = 10.0) -> None:
        """Deliver queued updates (for at most `timeout` seconds), then stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout)
        for task in list(self._flushers.values()):
            task.cancel()
        self._flushers.clear()
