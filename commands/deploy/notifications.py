"""Rollout messages through the paced Slack outbox: one message per rollout, updated in place,
and the result announced in the owning team's channel."""

from __future__ import annotations

from typing import Any

from commands.deploy import views
from commands.deploy.runner import Change
from commands.deploy.service import DeployPlan
from integrations.kubernetes.rollout import RolloutStatus
from integrations.slack.web import SlackGateway
from storage.models import DeployApproval


class SlackRolloutNotifier:
    def __init__(self, slack: SlackGateway) -> None:
        self.slack = slack

    async def started(self, change: Change, channel: str) -> tuple[str, str]:
        text, blocks = views.rollout_message(change, None, 0)
        ts = await self.slack.post(channel, text, blocks)
        return channel, ts

    async def progress(
        self, channel: str, ts: str, change: Change, status: RolloutStatus | None, elapsed: float
    ) -> None:
        # Updates coalesce in the outbox: at most about one per second reaches Slack.
        text, blocks = views.rollout_message(change, status, elapsed)
        await self.slack.update(channel, ts, text, blocks)
        await self.slack.delivered(channel, ts)  # told before the operation is finished

    async def finished(
        self,
        channel: str,
        ts: str,
        change: Change,
        status: RolloutStatus,
        elapsed: float,
        team_channel: str,
    ) -> None:
        text, blocks = views.rollout_message(change, status, elapsed)
        await self.slack.update(channel, ts, text, blocks)
        await self.slack.delivered(channel, ts)  # told before the operation is finished
        if team_channel != channel:
            summary, summary_blocks = views.rollout_announcement(change, status, elapsed)
            await self.slack.post(team_channel, summary, summary_blocks)


class SlackApprovalNotifier:
    """The second person's card in the owning team's channel, and the requester's answer."""

    def __init__(self, slack: SlackGateway) -> None:
        self.slack = slack

    async def approval_card(
        self, approval: DeployApproval, plan: DeployPlan, channel: str
    ) -> tuple[str, str]:
        text, blocks = views.approval_card(approval, plan)
        return channel, await self.slack.post(channel, text, blocks)

    async def approval_decided(self, approval: DeployApproval) -> None:
        text, blocks = views.approval_decided(approval)
        if approval.card_channel and approval.card_ts:
            await self.slack.update(approval.card_channel, approval.card_ts, text, blocks)
        await self.slack.dm(approval.requester, text, blocks)


class PersonNotifier:
    """Tells one person something only they need (an answer after a restart), where they
    asked, or in a DM when there is no channel."""

    def __init__(self, slack: SlackGateway) -> None:
        self.slack = slack

    async def tell(
        self, user: str, channel: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        if channel:
            await self.slack.post_ephemeral(channel, user, text, blocks)
        else:
            await self.slack.dm(user, text, blocks)
