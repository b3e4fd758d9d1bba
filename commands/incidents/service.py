"""The incident's business rules: open, roles, updates, severity, timeline, resolve, paging.

Opening and resolving are durable operations: the incident row is written first (under the
request's unique key) and the Slack work runs from it, each step guarded by what the row
already records, so a retry, a double submit or a restart never makes a second channel, card,
announcement, page, summary or postmortem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from commands.changes.service import ChangesService
from commands.changes.timeline import ChangeEvent
from commands.incidents import views
from commands.incidents.parse import OpenRequest, channel_name
from core.auth import Action, Actor, Authorizer, Target
from core.catalog import Catalog, Paging
from core.clock import Clock
from core.errors import Conflict, DependencyUnavailable, NotAuthorized, UserInputError
from core.operations import OperationRunner
from integrations.paging.clients import Page, PagingError, pager_for, should_page
from integrations.slack import conversations
from integrations.slack.web import SlackOutbox
from storage import incidents as repo
from storage.db import Database
from storage.incidents import Incident, IncidentEvent, IncidentState
from storage.models import AuditEntry, Operation

log = logging.getLogger(__name__)

OPEN = "incident.open"
RESOLVE = "incident.resolve"
CHANGES_WINDOW = timedelta(hours=24)
READ_ONLY_COMMANDS = frozenset(
    {"help", "unknown", "changes", "slo", "slo.show", "dora", "cost", "history", "home"}
    | {"status", "pods", "events", "logs"}
)
"""Audited commands that change nothing: they stay out of the incident timeline."""


@dataclass(frozen=True)
class PagingUrls:
    pagerduty: str
    opsgenie: str


@dataclass
class IncidentService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    operations: OperationRunner
    slack: SlackOutbox
    client: AsyncWebClient
    changes: ChangesService
    paging_urls: PagingUrls
    timeline_reaction: str = "memo"

    def register_operations(self) -> None:
        self.operations.register(OPEN, self._run_open, on_failure=self._failed)
        self.operations.register(RESOLVE, self._run_resolve, on_failure=self._failed)

    async def _failed(self, operation: Operation, reason: str) -> None:
        """Tell the person who asked, by DM, with the reason."""
        what = "open" if operation.kind == OPEN else "resolve"
        incident = await self.db.run(
            lambda s: repo.get(s, int(operation.payload.get("incident_id", 0)))
        )
        title = incident.title if incident is not None else "the incident"
        await self.slack.dm(
            operation.actor_user_id,
            f":x: forgebot could not {what} the incident “{title}”: {reason}",
        )

    # --- who ---------------------------------------------------------------------------------
    def team_for(self, actor: Actor, service: str) -> str:
        entry = self.catalog.service(service) if service else None
        if entry is not None:
            return entry.team
        team = self.auth.primary_team(actor.user_id)
        return team.name if team is not None else self.catalog.platform_team

    def _target(self, service: str, team: str) -> Target:
        return Target(team=team or None, service=service or None)

    def check_manage(self, actor: Actor, incident: Incident) -> None:
        if actor.user_id in (incident.commander, incident.communications):
            return
        decision = self.auth.authorize(
            actor, Action.INCIDENT_MANAGE, self._target(incident.service, incident.team)
        )
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.INCIDENT_MANAGE))

    def people(self, incident: Incident) -> list[str]:
        """Whom the channel invites: the opener, the team's on-call, then its members."""
        users = [incident.opened_by]
        team = self.catalog.team(incident.team)
        if team is not None:
            users += team.oncall + sorted(self.auth.groups.users_in(team.oncall_usergroup))
            users += team.members + sorted(self.auth.groups.users_in(team.usergroup))
        return list(dict.fromkeys(u for u in users if u))

    def paging_of(self, incident: Incident) -> Paging | None:
        service = self.catalog.service(incident.service) if incident.service else None
        if service is not None and service.paging is not None:
            return service.paging
        team = self.catalog.team(incident.team)
        return team.paging if team is not None else None

    # --- open --------------------------------------------------------------------------------
    async def open(
        self,
        actor: Actor,
        request: OpenRequest,
        *,
        key: str,
        impact_started_at: datetime | None = None,
    ) -> tuple[Incident, bool]:
        """Record the incident and start opening it; (incident, False) if `key` already did."""
        team = self.team_for(actor, request.service)
        decision = self.auth.authorize(
            actor, Action.INCIDENT_OPEN, self._target(request.service, team)
        )
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.INCIDENT_OPEN))
        now = self.clock.now()
        row = Incident(
            channel_name=channel_name(request.title, now),
            request_key=key,
            title=request.title,
            severity=request.severity,
            service=request.service,
            team=team,
            summary=request.summary,
            opened_by=actor.user_id,
            opened_at=now,
            impact_started_at=min(impact_started_at or now, now),
        )
        incident, created = await self.db.run(lambda s: repo.open_incident(s, row))
        if created:
            await self.operations.submit(
                OPEN,
                {"incident_id": incident.id},
                idempotency_key=f"{OPEN}:{incident.id}",
                actor_user_id=actor.user_id,
            )
        return incident, created

    async def _get(self, incident_id: int) -> Incident:
        incident = await self.db.run(lambda s: repo.get(s, incident_id))
        if incident is None:
            raise UserInputError("That incident no longer exists.")
        return incident

    async def _set(self, incident_id: int, **changes: Any) -> None:
        await self.db.run(lambda s: repo.set_fields(s, incident_id, **changes))

    async def _event(
        self, incident_id: int, kind: str, actor: str, text: str, dedupe: str | None = None
    ) -> bool:
        event = IncidentEvent(
            incident_id=incident_id,
            at=self.clock.now(),
            kind=kind,
            actor=actor,
            text=text[:2900],
            dedupe_key=dedupe,
        )
        return bool(await self.db.run(lambda s: repo.add_event(s, event)))

    async def _run_open(self, operation: Operation) -> dict[str, Any]:
        try:
            return await self._open_steps(operation)
        except SlackApiError as exc:
            error = exc.response.get("error") or f"HTTP {exc.response.status_code}"
            raise DependencyUnavailable(f"Slack refused a step ({error})") from None

    async def _open_steps(self, operation: Operation) -> dict[str, Any]:
        incident_id = int(operation.payload["incident_id"])
        incident = await self._get(incident_id)
        if not incident.channel_id:
            channel, name = await self._create_channel(incident)
            await self._set(incident_id, channel_id=channel, channel_name=name)
            incident = await self._get(incident_id)
            await self._event(
                incident_id,
                "opened",
                incident.opened_by,
                f"opened the incident ({incident.severity}): {incident.title}",
                dedupe=f"incident:{incident_id}:opened",
            )
        await conversations.invite(self.client, incident.channel_id, self.people(incident))
        if not incident.card_ts:
            text, blocks = await self._card(incident)
            ts = await self.slack.post(incident.channel_id, text, blocks)
            await self._set(incident_id, card_ts=ts)
            incident = await self._get(incident_id)
        await conversations.pin(self.client, incident.channel_id, incident.card_ts)
        team = self.catalog.team(incident.team)
        if not incident.announce_ts and team is not None:
            text, blocks = views.announcement(incident, self.clock.now())
            ts = await self.slack.post(team.channel, text, blocks)
            await self._set(incident_id, announce_channel=team.channel, announce_ts=ts)
        if not incident.paging:
            await self._page(incident)
        return {"channel": incident.channel_id}

    async def _create_channel(self, incident: Incident) -> tuple[str, str]:
        for attempt in range(1, 50):
            name = channel_name(incident.title, incident.opened_at, attempt)
            try:
                return await conversations.create_channel(self.client, name), name
            except conversations.NameTaken:
                continue
        raise Conflict("Slack has no free channel name left for this incident title today.")

    async def _page(self, incident: Incident) -> None:
        paging = self.paging_of(incident)
        if paging is None:
            outcome = "no paging configured"
        elif not should_page(paging, incident.severity):
            outcome = f"not paged ({incident.severity} is below {paging.min_severity})"
        else:
            pager = pager_for(
                paging,
                pagerduty_url=self.paging_urls.pagerduty,
                opsgenie_url=self.paging_urls.opsgenie,
            )
            link = f"slack://channel?id={incident.channel_id}" if incident.channel_id else ""
            page = Page(
                dedup_key=f"forgebot-incident-{incident.id}",
                summary=f"{incident.severity} {incident.title}",
                severity=incident.severity,
                source="forgebot",
                component=incident.service or incident.team,
                group=incident.team,
                at=incident.opened_at,
                link=link,
                details={"channel": f"#{incident.channel_name}", "opened_by": incident.opened_by},
            )
            try:
                await pager.trigger(page)
                outcome = f"{pager.provider}: paged"
            except PagingError as exc:
                outcome = f"{pager.provider}: failed ({exc})"
                await self.slack.post(
                    incident.channel_id,
                    f":warning: Paging through {pager.provider} failed: {exc}. Page by hand.",
                )
        await self._set(incident.id or 0, paging=outcome[:300])
        await self._event(incident.id or 0, "page", "", outcome, dedupe=None)
        await self.refresh_card(await self._get(incident.id or 0))

    # --- card --------------------------------------------------------------------------------
    async def _changes(self, incident: Incident) -> list[ChangeEvent]:
        services = (
            [incident.service]
            if incident.service
            else [s.name for s in self.catalog.services if s.team == incident.team]
        )
        if not services:
            return []
        return await self.changes.recent(services, CHANGES_WINDOW)

    async def _card(self, incident: Incident) -> tuple[str, list[dict[str, Any]]]:
        events = await self.db.run(lambda s: repo.events(s, incident.id or 0))
        updates = [e for e in events if e.kind == "update"]
        return views.card(
            incident,
            updates[-1] if updates else None,
            await self._changes(incident),
            self.clock.now(),
        )

    async def refresh_card(self, incident: Incident) -> None:
        if incident.channel_id and incident.card_ts:
            text, blocks = await self._card(incident)
            await self.slack.update(incident.channel_id, incident.card_ts, text, blocks)

    # --- in the channel ----------------------------------------------------------------------
    async def in_channel(self, channel_id: str) -> Incident:
        incident = await self.db.run(lambda s: repo.by_channel(s, channel_id))
        if incident is None:
            raise UserInputError(
                "This is not an incident channel: run it in the incident's channel."
            )
        return incident

    def _open_only(self, incident: Incident) -> None:
        if incident.state != IncidentState.OPEN:
            raise Conflict("This incident is already resolved.")

    async def take_role(self, actor: Actor, incident_id: int, role: str) -> bool:
        """The clicker takes the role; False if they already held it."""
        incident = await self._get(incident_id)
        self._open_only(incident)
        self.check_manage(actor, incident)
        if getattr(incident, role) == actor.user_id:
            return False
        await self.db.run(lambda s: repo.set_if_open(s, incident_id, **{role: actor.user_id}))
        await self._event(incident_id, "role", actor.user_id, f"became {views.ROLES[role]}")
        await self.slack.post(incident.channel_id, views.role_taken(role, actor.user_id))
        await self.refresh_card(await self._get(incident_id))
        return True

    async def update(self, actor: Actor, incident: Incident, text: str) -> None:
        self._open_only(incident)
        self.check_manage(actor, incident)
        await self._event(incident.id or 0, "update", actor.user_id, text)
        line = views.update_posted(actor.user_id, text)
        await self.slack.post(incident.channel_id, line)
        if incident.announce_channel and incident.announce_ts:
            await self.slack.post(incident.announce_channel, line, thread_ts=incident.announce_ts)
        await self.refresh_card(incident)

    async def change_severity(self, actor: Actor, incident: Incident, severity: str) -> bool:
        self._open_only(incident)
        self.check_manage(actor, incident)
        if incident.severity == severity:
            return False
        before = incident.severity
        await self.db.run(lambda s: repo.set_if_open(s, incident.id or 0, severity=severity))
        await self._event(
            incident.id or 0, "severity", actor.user_id, f"changed severity {before} → {severity}"
        )
        await self.slack.post(
            incident.channel_id, views.severity_changed(actor.user_id, before, severity)
        )
        fresh = await self._get(incident.id or 0)
        paging = self.paging_of(fresh)
        if paging is not None and should_page(paging, severity) and "paged" not in fresh.paging:
            await self._page(fresh)
        else:
            await self.refresh_card(fresh)
        return True

    async def record_pin(self, channel_id: str, ts: str, user: str, text: str) -> bool:
        incident = await self.db.run(lambda s: repo.by_channel(s, channel_id))
        if incident is None:
            return False
        return await self._event(
            incident.id or 0,
            "pin",
            user,
            f"pinned: {text or '(a message)'}",
            dedupe=f"pin:{channel_id}:{ts}",
        )

    async def record_reaction(self, channel_id: str, ts: str, user: str, reaction: str) -> bool:
        if reaction != self.timeline_reaction:
            return False
        incident = await self.db.run(lambda s: repo.by_channel(s, channel_id))
        if incident is None:
            return False
        text = await conversations.message_text(self.client, channel_id, ts)
        return await self._event(
            incident.id or 0,
            "marked",
            user,
            f"marked: {text or '(a message)'}",
            dedupe=f"reaction:{channel_id}:{ts}",
        )

    async def timeline(self, incident: Incident) -> list[IncidentEvent]:
        """The incident's events, with every forgebot action taken in its channel folded in."""
        if incident.channel_id:
            entries = await self.db.run(
                lambda s: repo.audit_in_channel(s, incident.channel_id, incident.opened_at)
            )
            for entry in entries:
                if entry.command in READ_ONLY_COMMANDS or entry.command.startswith("incident"):
                    continue
                event = IncidentEvent(
                    incident_id=incident.id or 0,
                    at=entry.at,
                    kind="action",
                    actor=entry.actor_user_id,
                    text=_describe(entry),
                    dedupe_key=f"audit:{entry.id}",
                )
                await self.db.run(lambda s, e=event: repo.add_event(s, e))  # type: ignore[misc]
        return list(await self.db.run(lambda s: repo.events(s, incident.id or 0)))

    # --- resolve -----------------------------------------------------------------------------
    async def resolve(self, actor: Actor, incident: Incident, text: str) -> bool:
        self.check_manage(actor, incident)
        now = self.clock.now()
        incident_id = incident.id or 0
        if not await self.db.run(lambda s: repo.resolve(s, incident_id, now, actor.user_id, text)):
            return False
        await self._event(incident_id, "resolved", actor.user_id, f"resolved the incident. {text}")
        await self.operations.submit(
            RESOLVE,
            {"incident_id": incident_id},
            idempotency_key=f"{RESOLVE}:{incident_id}",
            actor_user_id=actor.user_id,
            channel_id=incident.channel_id,
        )
        return True

    async def _run_resolve(self, operation: Operation) -> dict[str, Any]:
        incident = await self._get(int(operation.payload["incident_id"]))
        incident_id = incident.id or 0
        now = self.clock.now()
        events = await self.timeline(incident)
        if await self._event(
            incident_id,
            "summary",
            "",
            "posted the resolve summary",
            dedupe=f"incident:{incident_id}:summary",
        ):
            text, blocks = views.resolve_summary(incident, events, now)
            await self.slack.post(incident.channel_id, text, blocks)
        await self.refresh_card(incident)
        if incident.announce_channel and incident.announce_ts:
            text, blocks = views.announcement(incident, now)
            await self.slack.update(incident.announce_channel, incident.announce_ts, text, blocks)
        if not incident.postmortem_file:
            before = incident.impact_started_at - CHANGES_WINDOW
            changes = [c for c in await self._changes(incident) if c.at >= before]
            draft = views.postmortem(incident, events, changes, now)
            file_id = await self.slack.upload_file(
                incident.channel_id,
                f"postmortem-{incident.channel_name}.md",
                draft,
                f"Postmortem draft: {incident.title}",
                initial_comment="Postmortem draft: fill in the root cause and action items.",
            )
            await self._set(incident_id, postmortem_file=file_id or "uploaded")
        paging = self.paging_of(incident)
        if paging is not None and incident.paging.endswith("paged"):
            pager = pager_for(
                paging,
                pagerduty_url=self.paging_urls.pagerduty,
                opsgenie_url=self.paging_urls.opsgenie,
            )
            try:
                await pager.resolve(f"forgebot-incident-{incident_id}", incident.resolution)
                await self._set(incident_id, paging=f"{pager.provider}: paged, resolved")
            except PagingError as exc:
                log.warning("resolving the page of incident %s failed: %s", incident_id, exc)
        return {"resolved": incident_id}


def _describe(entry: AuditEntry) -> str:
    arguments = entry.arguments or {}
    detail = str(arguments.get("text") or arguments.get("value") or "").strip()
    command = str(arguments.get("command") or "")
    if command.startswith("/") and command != "/forge":
        return f"ran {command} {detail}".strip()
    return f"ran {entry.command} {detail}".strip()
