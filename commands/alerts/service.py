"""Alert groups from Alertmanager: stored first, then shown in Slack.

`receive` merges a webhook delivery into its group's row with a compare-and-swap and returns
at once (Alertmanager is answered quickly); the Slack work runs as a durable operation keyed by
the row's version, so a crash resumes it and a resend that changes nothing posts nothing. The
first delivery that claims the row posts the group's one message; later ones update it in place
(the outbox coalesces bursts of updates) and post what changed as one threaded reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from commands.alerts import views
from commands.alerts.routing import route
from commands.changes.service import ChangesService
from commands.changes.timeline import ChangeEvent
from commands.slo.budget import worst_first
from commands.slo.service import SloService
from core.auth import Action, Actor, Authorizer, Target
from core.catalog import Catalog
from core.clock import Clock
from core.errors import Conflict, DependencyUnavailable, NotAuthorized, UserInputError
from core.operations import OperationRunner
from integrations.alertmanager.silences import AlertmanagerClient
from integrations.alertmanager.webhook import WebhookMessage
from integrations.slack.web import SlackOutbox
from storage import alert_groups as repo
from storage.alert_groups import POSTING, AlertGroup
from storage.db import Database
from storage.models import Operation

log = logging.getLogger(__name__)

DELIVER = "alerts.deliver"
CHANGES_WINDOW = timedelta(hours=6)
ENRICHMENT_TTL = 60.0
"""Seconds the SLO and "what changed" lines of a service are reused across updates."""
CAS_ATTEMPTS = 20


@dataclass(frozen=True)
class Delivery:
    group_id: int
    version: int
    created: bool


@dataclass
class _Enrichment:
    at: float
    slo: str
    changes: list[ChangeEvent]


def _merge(stored: dict[str, Any], message: WebhookMessage) -> tuple[dict[str, Any], list[str]]:
    """The group's alerts after this delivery, and one line per alert whose state changed."""
    merged = dict(stored)
    notes: list[str] = []
    for alert in message.alerts:
        key = alert.key()
        name = alert.labels.get("alertname", "alert")
        summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
        entry = {
            "status": alert.status,
            "starts_at": alert.startsAt.isoformat(),
            "name": name,
            "summary": summary[:300],
            "runbook": alert.annotations.get("runbook_url", ""),
            "severity": alert.labels.get("severity", ""),
        }
        before = merged.get(key)
        merged[key] = entry
        text = f"{name}: {summary}" if summary else name
        if before is None and alert.status == "firing":
            notes.append(f":red_circle: firing: {text}")
        elif before is not None and before.get("status") != alert.status:
            icon = (
                ":white_check_mark: resolved"
                if alert.status == "resolved"
                else (":red_circle: firing again")
            )
            notes.append(f"{icon}: {text}")
        elif (
            before is not None
            and alert.status == "firing"
            and before.get("starts_at") != entry["starts_at"]
        ):
            notes.append(f":red_circle: firing again: {text}")
    return merged, notes


@dataclass
class AlertService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    operations: OperationRunner
    slack: SlackOutbox
    changes: ChangesService
    slos: SloService | None
    route_labels: list[str]
    alertmanager: AlertmanagerClient | None = None
    _enrichment: dict[str, _Enrichment] = field(default_factory=dict)
    _pending_notes: dict[int, list[tuple[str, asyncio.Future[None]]]] = field(default_factory=dict)
    _note_flushers: dict[int, asyncio.Task[None]] = field(default_factory=dict)

    def register_operations(self) -> None:
        self.operations.register(DELIVER, self._deliver)

    # --- webhook -----------------------------------------------------------------------------
    async def receive(self, message: WebhookMessage) -> Delivery:
        key = f"{message.receiver}/{message.groupKey}"[:900]
        labels = {**message.groupLabels, **message.commonLabels}
        where = route(self.catalog, labels, self.route_labels)
        now = self.clock.now()
        for _ in range(CAS_ATTEMPTS):
            found = await self.db.run(lambda s: repo.by_key(s, key))
            created = False
            if found is not None:
                row = found
            else:
                fresh = AlertGroup(
                    group_key=key,
                    receiver=message.receiver,
                    status=message.status,
                    service=where.service,
                    team=where.team,
                    environment=where.environment,
                    channel=where.channel,
                    common_labels=message.commonLabels,
                    external_url=message.externalURL[:500],
                    created_at=now,
                    updated_at=now,
                )
                row, created = await self._insert(fresh)
            # A group that resolved and fires again is a new episode: a new message.
            again = row.status == "resolved" and message.status == "firing" and not created
            merged, notes = _merge({} if again else row.alerts, message)
            group_id, version = row.id or 0, row.version
            episode: dict[str, Any] = (
                {"message_ts": "", "acked_by": "", "acked_at": None, "silences": []}
                if again
                else {}
            )
            swapped = await self._swap(
                group_id,
                version,
                alerts=merged,
                status=message.status,
                common_labels=message.commonLabels,
                **episode,
            )
            if not swapped:
                continue  # another delivery changed the group meanwhile: merge into theirs
            if again:
                notes = []  # the new message lists them
            if notes or created or again or row.status != message.status or not row.message_ts:
                await self.operations.submit(
                    DELIVER,
                    {
                        "group_id": group_id,
                        "notes": notes,
                        "hidden": message.truncatedAlerts,
                        "received": time.time(),
                    },
                    idempotency_key=f"{DELIVER}:{group_id}:{version + 1}",
                )
            return Delivery(group_id, version + 1, created)
        raise Conflict("the alert group kept changing; Alertmanager will resend")

    # --- Slack -------------------------------------------------------------------------------
    async def _deliver(self, operation: Operation) -> dict[str, Any]:
        group_id = int(operation.payload["group_id"])
        hidden = int(operation.payload.get("hidden", 0))
        received = float(operation.payload.get("received", time.time()))
        group = await self._get(group_id)
        if not group.message_ts:
            if await self.db.run(lambda s: repo.claim_post(s, group_id)):
                text, blocks = await self.render(group, hidden)
                ts = await self.slack.post(group.channel, text, blocks)
                await self.db.run(lambda s: repo.set_message(s, group_id, group.channel, ts))
                latest = await self._get(group_id)
                if latest.version != group.version:
                    await self._show(latest, hidden)
                return {"posted": ts, "latency": time.time() - received}
            group = await self._get(group_id)
        for _ in range(100):
            if group.message_ts != POSTING:
                break
            # The first delivery is posting the message (with the latest alerts); this one's
            # reply goes under it once it exists.
            await asyncio.sleep(0.1)
            group = await self._get(group_id)
        else:
            return {"posting": "the first delivery did not finish posting; it shows the alerts"}
        await self._show(group, hidden)
        notes: list[str] = list(operation.payload.get("notes") or [])
        if notes:
            await self.note(
                group,
                "\n".join(notes[:30])
                + (f"\n… and {len(notes) - 30} more" if len(notes) > 30 else ""),
            )
        return {
            "updated": group.message_ts,
            "notes": len(notes),
            "latency": time.time() - received,
        }

    async def note(self, group: AlertGroup, text: str) -> None:
        """A threaded reply under the group's message. Replies that wait for the channel's turn
        (a flood) are merged into one, so a busy group never queues more than one reply; this
        returns once the reply carrying `text` is posted."""
        group_id = group.id or 0
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending_notes.setdefault(group_id, []).append((text, done))
        flusher = self._note_flushers.get(group_id)
        if flusher is None or flusher.done():
            self._note_flushers[group_id] = asyncio.create_task(
                self._flush_notes(group_id, group.channel, group.message_ts)
            )
        await done

    async def _flush_notes(self, group_id: int, channel: str, ts: str) -> None:
        try:
            while self._pending_notes.get(group_id):
                batch = self._pending_notes.pop(group_id)
                text = "\n".join(t for t, _ in batch)
                if len(text) > 3500:
                    text = text[:3500] + "\n… (more in the message above)"
                try:
                    await self.slack.post(channel, text, thread_ts=ts)
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            if self._note_flushers.get(group_id) is asyncio.current_task():
                del self._note_flushers[group_id]

    async def _show(self, group: AlertGroup, hidden: int = 0) -> None:
        text, blocks = await self.render(group, hidden)
        await self.slack.update(group.channel, group.message_ts, text, blocks)

    async def _insert(self, group: AlertGroup) -> tuple[AlertGroup, bool]:
        return await self.db.run(lambda s: repo.insert(s, group))

    async def _swap(self, group_id: int, version: int, **changes: Any) -> bool:
        now = self.clock.now()
        return bool(await self.db.run(lambda s: repo.swap(s, group_id, version, now, **changes)))

    async def _get(self, group_id: int) -> AlertGroup:
        group = await self.db.run(lambda s: repo.get(s, group_id))
        if group is None:
            raise UserInputError("That alert group is no longer known.")
        return group

    async def _enrich(self, service: str) -> _Enrichment:
        cached = self._enrichment.get(service)
        if cached is not None and time.monotonic() - cached.at < ENRICHMENT_TTL:
            return cached
        changes = await self.changes.recent([service], CHANGES_WINDOW) if service else []
        slo = ""
        refs = self.slos.refs([service]) if self.slos is not None and service else []
        if self.slos is not None and refs:
            try:
                items = worst_first(
                    await self.slos.evaluate(refs, self.clock.now(), trend=False, deadline=2.0)
                )
                slo = "\n".join(_slo_line(item) for item in items[:4])
            except DependencyUnavailable as exc:
                slo = f"_SLO data unavailable: {exc}_"
        fresh = _Enrichment(time.monotonic(), slo, changes)
        self._enrichment[service] = fresh
        return fresh

    async def render(self, group: AlertGroup, hidden: int = 0) -> tuple[str, list[dict[str, Any]]]:
        enrichment = await self._enrich(group.service)
        alerts = sorted(
            group.alerts.values(), key=lambda a: (a["status"] != "firing", a["starts_at"])
        )
        lines = [
            views.AlertLine(
                a["status"] == "firing",
                f"{a['name']}: {a['summary']}" if a.get("summary") else str(a["name"]),
                datetime.fromisoformat(a["starts_at"]),
            )
            for a in alerts
        ]
        runbook = next((a["runbook"] for a in alerts if a.get("runbook")), "")
        entry = self.catalog.service(group.service) if group.service else None
        if not runbook and entry is not None and entry.runbook:
            runbook = entry.runbook
        names = sorted({str(a["name"]) for a in alerts})
        title = names[0] if len(names) == 1 else f"{len(names)} alerts"
        acknowledged = (
            f"<@{group.acked_by}> at {group.acked_at:%H:%M} UTC"
            if group.acked_by and group.acked_at
            else ""
        )
        silences = [
            f"{s['duration']} by <@{s['by']}> until {s['until'][11:16]} UTC" for s in group.silences
        ]
        severity = group.common_labels.get("severity", "")
        view = views.AlertView(
            title=title,
            firing=group.status == "firing",
            lines=lines,
            team=group.team,
            service=group.service,
            environment=group.environment,
            severity=severity,
            hidden=hidden,
            acknowledged=acknowledged,
            silences=silences,
            slo=enrichment.slo,
            changes=enrichment.changes if group.service else None,
            runbook=runbook,
            source_link=group.external_url,
            buttons=views.group_buttons(group.id or 0, group.service, group.environment),
        )
        return views.alert_message(view)

    # --- buttons -----------------------------------------------------------------------------
    def check(self, actor: Actor, group: AlertGroup) -> None:
        decision = self.auth.authorize(
            actor,
            Action.ALERT_ACT,
            Target(team=group.team or None, service=group.service or None),
        )
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ALERT_ACT))

    async def group_for(self, actor: Actor, value: str) -> AlertGroup:
        try:
            group_id = int(value)
        except ValueError:
            raise UserInputError("That button no longer points at an alert group.") from None
        group = await self._get(group_id)
        self.check(actor, group)
        return group

    async def acknowledge(self, actor: Actor, group: AlertGroup) -> str:
        """Acknowledge once; returns "" or who had acknowledged it already."""
        if group.acked_by:
            return group.acked_by
        now = self.clock.now()
        for _ in range(CAS_ATTEMPTS):
            current = await self._get(group.id or 0)
            if current.acked_by:
                return current.acked_by
            if await self._swap(
                current.id or 0, current.version, acked_by=actor.user_id, acked_at=now
            ):
                fresh = await self._get(current.id or 0)
                await self.note(fresh, f":eyes: Acknowledged by <@{actor.user_id}>.")
                await self._show(fresh)
                return ""
        raise Conflict("the alert group kept changing; press again")

    async def silence(self, actor: Actor, group: AlertGroup, duration: timedelta) -> str:
        if self.alertmanager is None:
            raise DependencyUnavailable(
                "silences need Alertmanager's address: set ALERTMANAGER_URL"
            )
        matchers = dict(group.common_labels)
        if not matchers:
            raise UserInputError("This group has no common labels to silence on.")
        now = self.clock.now()
        until = now + duration
        hours = f"{int(duration.total_seconds() // 3600)}h"
        silence_id = await self.alertmanager.silence(
            matchers,
            now,
            until,
            created_by=f"{actor.user_id} (forgebot)",
            comment=f"Silenced {hours} from Slack by {actor.user_id} (forgebot alert group {group.id})",
        )
        entry = {
            "id": silence_id,
            "by": actor.user_id,
            "until": until.isoformat(),
            "duration": hours,
        }
        for _ in range(CAS_ATTEMPTS):
            current = await self._get(group.id or 0)
            if await self._swap(
                current.id or 0, current.version, silences=[*current.silences, entry]
            ):
                fresh = await self._get(current.id or 0)
                await self.note(
                    fresh,
                    f":mute: Silenced for {hours} by <@{actor.user_id}> "
                    f"(until {until:%H:%M} UTC, silence `{silence_id}`).",
                )
                await self._show(fresh)
                return silence_id
        raise Conflict("the alert group kept changing; the silence was created, though")

    def earliest_start(self, group: AlertGroup) -> datetime | None:
        starts = [datetime.fromisoformat(a["starts_at"]) for a in group.alerts.values()]
        return min(starts) if starts else None


def _slo_line(item: Any) -> str:
    budget = (
        f"{item.budget_remaining * 100:.0f}% budget left"
        if item.budget_remaining is not None
        else "budget unknown"
    )
    burns = ", ".join(
        f"{int(w.total_seconds() // 3600)}h {b:.1f}x" for w, b in item.burn.items() if b is not None
    )
    return f"{item.ref.key}: {item.status.value}, {budget}" + (f", burn {burns}" if burns else "")
