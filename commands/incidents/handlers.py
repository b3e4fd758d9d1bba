"""Slack listeners of incidents: `/forge incident ...`, the form, role buttons, and the
`pin_added` / `reaction_added` events that feed the timeline."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.changes.service import ChangesService
from commands.incidents import parse, views
from commands.incidents.service import IncidentService, PagingUrls
from core.auth import Actor
from core.errors import UserInputError
from core.interactions import Interaction, on_action, on_view
from core.router import Ack, Invocation, Subcommand, ephemeral
from integrations.slack.blocks import state_value
from storage import idempotency


def build_service(ctx: AppContext, changes: ChangesService) -> IncidentService:
    service = IncidentService(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.auth,
        ctx.operations,
        ctx.slack,
        ctx.slack_client,
        changes,
        PagingUrls(ctx.settings.pagerduty_events_url, ctx.settings.opsgenie_api_url),
        timeline_reaction=ctx.settings.incident_timeline_reaction,
    )
    service.register_operations()
    return service


def register(app: AsyncApp, ctx: AppContext, incidents: IncidentService) -> None:
    async def opened_reply(created: bool, channel_id: str, channel_name: str) -> str:
        where = f"<#{channel_id}>" if channel_id else f"#{channel_name}"
        if created:
            return f":rotating_light: Opening the incident: {where}. You are being invited."
        return f"That incident is already open: {where}."

    async def handle(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        request = parse.parse(invocation.args, ctx.catalog)
        if request is None:
            await ack()
            await ctx.slack_client.views_open(
                trigger_id=invocation.trigger_id,
                view=views.open_form([s.name for s in ctx.catalog.services], invocation.channel_id),
            )
            return
        if isinstance(request, parse.OpenRequest):
            await ack()
            incident, created = await incidents.open(
                invocation.actor, request, key=f"incident:{invocation.trigger_id}"
            )
            await respond(
                **ephemeral(await opened_reply(created, incident.channel_id, incident.channel_name))
            )
            return
        incident = await incidents.in_channel(invocation.channel_id)
        await ack()
        if request.verb == "update":
            await incidents.update(invocation.actor, incident, request.text)
            await respond(**ephemeral("Update posted."))
        elif request.verb == "severity":
            changed = await incidents.change_severity(invocation.actor, incident, request.text)
            note = f"Severity is now {request.text}." if changed else "Severity unchanged."
            await respond(**ephemeral(note))
        else:
            done = await incidents.resolve(invocation.actor, incident, request.text)
            note = (
                "Resolving: summary and postmortem draft on their way."
                if done
                else ("This incident is already resolved.")
            )
            await respond(**ephemeral(note))

    ctx.router.add(
        Subcommand(
            name="incident",
            summary="open and run an incident: channel, roles, paging, timeline, postmortem",
            usage=[
                "incident [SEV1-4] TITLE",
                "incident update TEXT",
                "incident severity SEV1-4",
                "incident resolve [TEXT]",
            ],
            handler=handle,
            examples=[
                "/forge incident SEV2 checkout returns 500s",
                "/forge incident update rolled back, error rate falling",
                "/forge incident resolve",
            ],
        )
    )

    async def submitted(i: Interaction) -> None:
        title = state_value(i.values, "title").strip()
        if not title:
            await i.ack(response_action="errors", errors={"title": "Give the incident a title."})
            return
        severity = parse.severity_of(state_value(i.values, "severity")) or parse.DEFAULT_SEVERITY
        service = state_value(i.values, "service")
        if service and ctx.catalog.service(service) is None:
            await i.ack(response_action="errors", errors={"service": "Unknown service."})
            return
        await i.ack()
        request = parse.OpenRequest(
            title[: parse.TITLE_MAX],
            severity,
            service,
            state_value(i.values, "summary").strip()[: parse.TEXT_MAX],
        )
        incident, created = await incidents.open(
            i.actor, request, key=f"incident:view:{i.view.get('id', '')}"
        )
        text = await opened_reply(created, incident.channel_id, incident.channel_name)
        origin = str(i.view.get("private_metadata") or "")
        if origin:
            await ctx.slack.post_ephemeral(origin, i.actor.user_id, text)
        else:
            await ctx.slack.dm(i.actor.user_id, text)

    on_view(app, ctx.boundary, views.OPEN_FORM, "incident.form", submitted)

    def take(role: str) -> Any:
        async def handler(i: Interaction) -> None:
            await i.ack()
            try:
                incident_id = int(i.value)
            except ValueError:
                raise UserInputError("That button no longer points at an incident.") from None
            taken = await incidents.take_role(i.actor, incident_id, role)
            if not taken and i.respond is not None:
                await i.respond(
                    **ephemeral(f"You already are the {views.ROLES[role]}."),  # type: ignore[arg-type]
                    replace_original=False,
                )

        return handler

    on_action(app, ctx.boundary, views.TAKE_COMMANDER, "incident.commander", take("commander"))
    on_action(
        app,
        ctx.boundary,
        views.TAKE_COMMUNICATIONS,
        "incident.communications",
        take("communications"),
    )

    async def event_once(body: dict[str, Any]) -> bool:
        event_id = str(body.get("event_id", ""))
        if not event_id:
            return True
        now = ctx.clock.now()
        return bool(await ctx.db.run(lambda s: idempotency.claim(s, f"event:{event_id}", now)))

    @app.event("pin_added")
    async def on_pin(body: dict[str, Any], event: dict[str, Any], ack: Any) -> None:
        safe_ack = Ack(ack)
        item = event.get("item") or {}
        message = item.get("message") or {}
        channel = str(event.get("channel_id") or item.get("channel") or "")
        user = str(event.get("user", ""))

        async def work() -> None:
            await safe_ack()
            if not await event_once(body):
                return
            ts = str(message.get("ts") or item.get("ts") or "")
            if ts:
                await incidents.record_pin(channel, ts, user, str(message.get("text", "")))

        await ctx.boundary.run(
            "incident.pin", Actor(user_id=user), channel, {}, safe_ack, None, work, audit=False
        )

    @app.event("pin_removed")
    async def on_unpin(ack: Any) -> None:
        await ack()

    @app.event("reaction_added")
    async def on_reaction(body: dict[str, Any], event: dict[str, Any], ack: Any) -> None:
        safe_ack = Ack(ack)
        item = event.get("item") or {}
        channel = str(item.get("channel", ""))
        user = str(event.get("user", ""))

        async def work() -> None:
            await safe_ack()
            wanted = str(event.get("reaction", "")) == incidents.timeline_reaction
            if item.get("type") != "message" or not wanted or not await event_once(body):
                return
            await incidents.record_reaction(
                channel, str(item.get("ts", "")), user, str(event.get("reaction", ""))
            )

        await ctx.boundary.run(
            "incident.reaction", Actor(user_id=user), channel, {}, safe_ack, None, work, audit=False
        )
