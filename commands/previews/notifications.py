"""How previews reach Slack, and how the environments capability reaches previews.

- `PreviewAnnouncer` keeps one message per pull request in the owning team's channel. The first
  post runs in the background (channels are paced at one message a second, and two hundred
  pull requests opened at once must not wait for each other's announcements); whatever is
  shown meanwhile is kept and sent as an update once the message exists. Updates of one
  message coalesce in the outbox, so only the latest state costs a call.
- `PreviewRolloutNotifier` is the rollout runner's notifier for previews: progress goes into
  that one message, nothing is posted beside it.
- `PreviewAwareNotifier` wraps the environments capability's notifier: environments without an
  owner are previews, whose news belong in their pull request's message, not in a DM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from commands.deploy.runner import Change
from commands.environments.service import EnvironmentNotifier
from core.clock import Clock
from integrations.kubernetes.rollout import RolloutStatus
from integrations.slack.web import Blocks, SlackGateway
from storage import previews as repo
from storage.db import Database
from storage.models import EnvironmentRecord
from storage.previews import PullRequestPreview

log = logging.getLogger(__name__)


class PreviewAnnouncer:
    def __init__(self, slack: SlackGateway, db: Database, clock: Clock) -> None:
        self.slack, self.db, self.clock = slack, db, clock
        self._messages: dict[int, tuple[str, str]] = {}
        self._waiting: dict[int, tuple[str, Blocks]] = {}
        self._posting: dict[int, asyncio.Task[None]] = {}

    async def show(
        self, preview: PullRequestPreview, channel: str, text: str, blocks: Blocks
    ) -> None:
        assert preview.id is not None
        known = self._messages.get(preview.id) or (
            (preview.slack_channel, preview.slack_ts) if preview.slack_ts else None
        )
        if known is not None:
            await self.slack.update(known[0], known[1], text, blocks)
            return
        self._waiting[preview.id] = (text, blocks)
        if preview.id not in self._posting:
            self._posting[preview.id] = asyncio.create_task(
                self._post(preview.id, channel), name=f"preview-message-{preview.id}"
            )

    async def _post(self, preview_id: int, channel: str) -> None:
        try:
            text, blocks = self._waiting.pop(preview_id)
            ts = await self.slack.post(channel, text, blocks)
            self._messages[preview_id] = (channel, ts)
            now = self.clock.now()
            await self.db.run(
                lambda s: repo.set_fields(s, preview_id, now, slack_channel=channel, slack_ts=ts)
            )
            while preview_id in self._waiting:
                text, blocks = self._waiting.pop(preview_id)
                await self.slack.update(channel, ts, text, blocks)
        except SlackApiError as exc:
            log.warning(
                "cannot post the preview message in %s: %s (is the bot in the channel?)",
                channel,
                exc.response.get("error"),
            )
        except Exception:
            log.exception("posting a preview message failed")
        finally:
            del self._posting[preview_id]

    async def flush(self) -> None:
        """Wait until every first post has been made (tests, bench, shutdown)."""
        while self._posting:
            await asyncio.gather(*list(self._posting.values()), return_exceptions=True)


Progress = Callable[[str, RolloutStatus | None], Awaitable[None]]


class PreviewRolloutNotifier:
    """`RolloutNotifier` for previews: the runner's progress goes to the preview's message."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    async def started(self, change: Change, channel: str) -> tuple[str, str]:
        return "", ""

    async def progress(
        self, channel: str, ts: str, change: Change, status: RolloutStatus | None, elapsed: float
    ) -> None:
        await self._progress(change.environment, status)

    async def finished(
        self,
        channel: str,
        ts: str,
        change: Change,
        status: RolloutStatus,
        elapsed: float,
        team_channel: str,
    ) -> None:
        return None  # the preview service announces the outcome with its link


Gone = Callable[[EnvironmentRecord, str], Awaitable[bool]]


class PreviewAwareNotifier:
    """`EnvironmentNotifier` that keeps previews' environments (no owner) out of DMs."""

    def __init__(self, inner: EnvironmentNotifier, gone: Gone) -> None:
        self.inner, self._gone = inner, gone

    async def request_card(
        self, record: EnvironmentRecord, platform_channel: str
    ) -> tuple[str, str]:
        return await self.inner.request_card(record, platform_channel)

    async def card_decided(self, record: EnvironmentRecord) -> None:
        await self.inner.card_decided(record)

    async def to_owner(self, record: EnvironmentRecord, event: str, detail: str = "") -> None:
        if record.owner_user_id:
            await self.inner.to_owner(record, event, detail)
        elif event == "deleted":
            await self._gone(record, detail)

    async def to_person(self, user: str, text: str) -> None:
        await self.inner.to_person(user, text)

    async def progress(
        self, record: EnvironmentRecord, done: list[str], current: str | None, failed: str | None
    ) -> tuple[str, str]:
        if record.owner_user_id:
            return await self.inner.progress(record, done, current, failed)
        return "", ""

    async def expiry_reminder(self, record: EnvironmentRecord, left: timedelta) -> None:
        if record.owner_user_id:
            await self.inner.expiry_reminder(record, left)

    async def extension_request(
        self, record: EnvironmentRecord, until: datetime, requester: str, platform_channel: str
    ) -> None:
        await self.inner.extension_request(record, until, requester, platform_channel)


__all__: list[Any] = ["PreviewAnnouncer", "PreviewAwareNotifier", "PreviewRolloutNotifier"]
