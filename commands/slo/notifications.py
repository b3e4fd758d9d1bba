"""Burn-rate alert messages through the paced Slack outbox."""

from __future__ import annotations

from datetime import datetime

from commands.slo import views
from commands.slo.alerts import LastDeploy
from commands.slo.budget import Alert, SloFigures
from core.clock import utc
from integrations.slack.web import SlackGateway
from storage.slo_alerts import SloAlertEpisode


class SlackAlertNotifier:
    def __init__(self, slack: SlackGateway) -> None:
        self.slack = slack

    async def fired(
        self, channel: str, item: SloFigures, alert: Alert, deploy: LastDeploy | None
    ) -> str:
        text, blocks = views.alert_message(item, alert, deploy)
        return await self.slack.post(channel, text, blocks)

    async def changed(
        self, channel: str, ts: str, item: SloFigures, alert: Alert, deploy: LastDeploy | None
    ) -> None:
        text, blocks = views.alert_message(item, alert, deploy)
        await self.slack.update(channel, ts, text, blocks)

    async def resolved(
        self, channel: str, ts: str, episode: SloAlertEpisode, now: datetime
    ) -> None:
        text, blocks = views.resolved_message(
            episode.slo_key, episode.severity, now - utc(episode.started_at)
        )
        await self.slack.update(channel, ts, text, blocks)
