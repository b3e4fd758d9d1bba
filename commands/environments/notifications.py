"""The environments capability's messages, sent through the Slack outbox (paced, retried)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from commands.environments import views
from core.block_limits import escape
from core.clock import Clock
from integrations.slack.web import SlackGateway
from storage.models import EnvironmentRecord


class SlackEnvironmentNotifier:
    def __init__(self, slack: SlackGateway, clock: Clock, steps: Sequence[str]) -> None:
        self.slack = slack
        self.clock = clock
        self.steps = steps

    async def request_card(
        self, record: EnvironmentRecord, platform_channel: str
    ) -> tuple[str, str]:
        text, blocks = views.request_card(record, self.clock.now())
        ts = await self.slack.post(platform_channel, text, blocks)
        return platform_channel, ts

    async def card_decided(self, record: EnvironmentRecord) -> None:
        if record.card_channel and record.card_ts:
            text, blocks = views.request_card(record, self.clock.now())
            await self.slack.update(record.card_channel, record.card_ts, text, blocks)

    async def to_owner(self, record: EnvironmentRecord, event: str, detail: str = "") -> None:
        await self.slack.dm(
            record.owner_user_id, views.owner_message(record, event, detail, self.clock.now())
        )

    async def to_person(self, user: str, text: str) -> None:
        await self.slack.dm(user, escape(text))

    async def progress(
        self, record: EnvironmentRecord, done: list[str], current: str | None, failed: str | None
    ) -> tuple[str, str]:
        text, blocks = views.progress(record, self.steps, done, current, failed)
        if record.progress_ts:
            await self.slack.update(record.progress_channel, record.progress_ts, text, blocks)
            return record.progress_channel, record.progress_ts
        return await self.slack.dm(record.owner_user_id, text, blocks)

    async def extension_request(
        self, record: EnvironmentRecord, until: datetime, requester: str, platform_channel: str
    ) -> None:
        text, blocks = views.extension_card(record, until, requester, None)
        await self.slack.post(platform_channel, text, blocks)

    async def expiry_reminder(self, record: EnvironmentRecord, left: timedelta) -> None:
        text, blocks = views.reminder(record, left)
        await self.slack.dm(record.owner_user_id, text, blocks)
