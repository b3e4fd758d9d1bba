"""Rollout messages through the paced Slack outbox: one message per rollout, updated in place."""

from __future__ import annotations

from bot.clock import Clock
from commands.deploy import views
from commands.deploy.rollback import RollbackPlan
from integrations.kubernetes.rollout import RolloutStatus
from integrations.slack.web import SlackGateway


class SlackRolloutNotifier:
    def __init__(self, slack: SlackGateway, clock: Clock) -> None:
        self.slack = slack
        self.clock = clock
        self._actors: dict[str, str] = {}

    async def started(self, plan: RollbackPlan, actor: str, channel: str) -> tuple[str, str]:
        text, blocks = views.rollout_message(plan, actor, None, 0)
        ts = await self.slack.post(channel, text, blocks)
        self._actors[ts] = actor
        return channel, ts

    async def progress(
        self, channel: str, ts: str, plan: RollbackPlan, status: RolloutStatus, elapsed: float
    ) -> None:
        # Updates coalesce in the outbox: at most about one per second reaches Slack.
        text, blocks = views.rollout_message(plan, self._actors.get(ts, ""), status, elapsed)
        await self.slack.update(channel, ts, text, blocks)

    async def finished(
        self,
        channel: str,
        ts: str,
        plan: RollbackPlan,
        status: RolloutStatus,
        elapsed: float,
        team_channel: str,
    ) -> None:
        text, blocks = views.rollout_message(plan, self._actors.pop(ts, ""), status, elapsed)
        await self.slack.update(channel, ts, text, blocks)
        if team_channel != channel:
            await self.slack.post(team_channel, text, blocks)
