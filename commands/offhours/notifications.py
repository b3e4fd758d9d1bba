"""Off-hours messages, sent through the Slack outbox (paced, retried): to the environment's owner
by DM, or to its team's channel when it has no owner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from commands.offhours import views
from commands.offhours.report import SavingsLine
from commands.offhours.service import EnvOutcome, OffhoursTarget, Reminder
from core.catalog import Catalog
from integrations.slack.blocks import Block
from integrations.slack.web import SlackGateway


class SlackOffhoursNotifier:
    def __init__(self, slack: SlackGateway, catalog: Catalog) -> None:
        self.slack = slack
        self.catalog = catalog

    async def _tell(self, target: OffhoursTarget, text: str, blocks: list[Block]) -> None:
        if target.owner:
            await self.slack.dm(target.owner, text, blocks)
            return
        team = self.catalog.team(target.team)
        if team is not None:
            await self.slack.post(team.channel, text, blocks)

    async def reminder(self, reminder: Reminder) -> None:
        text, blocks = views.reminder(
            reminder.target.environment, reminder.shutdown_at, reminder.zone, reminder.keep_until
        )
        await self._tell(reminder.target, text, blocks)

    async def changed(
        self, target: OffhoursTarget, outcome: EnvOutcome, zone: str, next_change: datetime | None
    ) -> None:
        text = views.changed(target.environment, outcome.acted, outcome.changed, zone, next_change)
        await self._tell(target, text, views.message_blocks(text))

    async def alert(self, target: OffhoursTarget, what: str, error: str) -> None:
        text = views.alert(target.environment, what, error)
        await self._tell(target, text, views.message_blocks(text))

    async def weekly(self, channel: str, team: str, lines: Sequence[SavingsLine]) -> None:
        text, blocks = views.weekly(team, lines)
        await self.slack.post(channel, text, blocks)
