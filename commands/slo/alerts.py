"""The burn-rate alert job: multi-window, multi-burn-rate conditions, one message per episode.

An episode opens when an SLO's condition first holds: the row is inserted under a unique
`open_key` before anything is posted, so only the run that inserted it posts (two replicas or
a retried slot never double-post). While the condition holds nothing is repeated; a page that
follows a ticket updates the same message; when it clears, the same message says resolved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from commands.slo.budget import SEVERITY_RANK, Alert, Severity, SloFigures, Status
from commands.slo.service import SloService
from core.catalog import Catalog
from core.clock import Clock
from integrations.prometheus import PrometheusUnavailable
from storage import deployments
from storage import slo_alerts as repo
from storage.db import Database
from storage.slo_alerts import SloAlertEpisode

log = logging.getLogger(__name__)

JOB_DEADLINE_SECONDS = 60.0


class AlertNotifier(Protocol):
    async def fired(
        self, channel: str, item: SloFigures, alert: Alert, deploy: LastDeploy | None
    ) -> str:
        """Post the alert; returns the message ts."""
        ...

    async def changed(
        self, channel: str, ts: str, item: SloFigures, alert: Alert, deploy: LastDeploy | None
    ) -> None: ...

    async def resolved(
        self, channel: str, ts: str, episode: SloAlertEpisode, now: datetime
    ) -> None: ...


@dataclass(frozen=True)
class LastDeploy:
    version: str
    actor: str


@dataclass(frozen=True)
class AlertRun:
    fired: list[str]
    escalated: list[str]
    resolved: list[str]


@dataclass
class BurnAlerts:
    catalog: Catalog
    db: Database
    clock: Clock
    slos: SloService
    notifier: AlertNotifier

    async def run(self, slot: datetime | None = None) -> AlertRun:
        refs = self.slos.refs([s.name for s in self.catalog.services])
        if not refs:
            return AlertRun([], [], [])
        now = self.clock.now()
        try:
            items = await self.slos.evaluate(refs, now, deadline=JOB_DEADLINE_SECONDS)
        except PrometheusUnavailable as exc:
            # Knowing nothing changes nothing: no alert opens or resolves on missing data.
            log.warning("SLO burn-rate alerts skipped: %s", exc)
            return AlertRun([], [], [])
        episodes = {e.slo_key: e for e in await self.db.run(repo.open_episodes)}
        run = AlertRun([], [], [])
        for item in items:
            episode = episodes.get(item.ref.key)
            if item.alert is not None:
                await self._holds(item, item.alert, episode, now, run)
            elif episode is not None and item.status is not Status.ERROR:
                await self._clears(episode, now, run)
        return run

    async def _deploy(self, item: SloFigures, alert: Alert, now: datetime) -> LastDeploy | None:
        since = now - alert.condition.long
        environment = item.ref.slo.environment
        record = await self.db.run(
            lambda s: deployments.last_deploy_since(s, item.ref.service, environment, since)
        )
        return None if record is None else LastDeploy(record.version, record.actor)

    def _channel(self, service: str) -> str:
        entry = self.catalog.service(service)
        team = self.catalog.team(entry.team) if entry else None
        return team.channel if team else ""

    async def _holds(
        self,
        item: SloFigures,
        alert: Alert,
        episode: SloAlertEpisode | None,
        now: datetime,
        run: AlertRun,
    ) -> None:
        channel = self._channel(item.ref.service)
        if episode is None:
            row = SloAlertEpisode(
                slo_key=item.ref.key,
                service=item.ref.service,
                environment=item.ref.slo.environment,
                severity=alert.severity.value,
                condition=alert.describe(),
                started_at=now,
                channel=channel,
            )
            created = await self.db.run(lambda s: repo.open_episode(s, row))
            if created is None:
                return  # another run opened it first; that run posts
            episode = created
            run.fired.append(item.ref.key)
        else:
            if episode.message_ts == repo.POSTING:
                return  # claimed by an earlier run that did not finish posting
            if not episode.message_ts:
                # The opener crashed before posting: one later run claims and posts it.
                episode_id = episode.id or 0
                if not await self.db.run(lambda s: repo.claim_unposted(s, episode_id, now)):
                    return
        deploy = await self._deploy(item, alert, now)
        if not episode.message_ts or episode.message_ts == repo.POSTING:
            ts = await self.notifier.fired(channel, item, alert, deploy)
            episode_id = episode.id or 0
            await self.db.run(lambda s: repo.set_message(s, episode_id, channel, ts))
            return
        if SEVERITY_RANK[alert.severity] > SEVERITY_RANK[Severity(episode.severity)]:
            episode_id = episode.id or 0
            if await self.db.run(
                lambda s: repo.escalate(s, episode_id, alert.severity.value, alert.describe())
            ):
                run.escalated.append(item.ref.key)
                await self.notifier.changed(
                    episode.channel, episode.message_ts, item, alert, deploy
                )

    async def _clears(self, episode: SloAlertEpisode, now: datetime, run: AlertRun) -> None:
        episode_id = episode.id or 0
        if await self.db.run(lambda s: repo.resolve(s, episode_id, now)):
            run.resolved.append(episode.slo_key)
            if episode.message_ts and episode.message_ts != repo.POSTING:
                await self.notifier.resolved(episode.channel, episode.message_ts, episode, now)
