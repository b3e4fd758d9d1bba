"""Slack listeners of incidents: `/forge incident ...`, the form, role buttons, and the
`pin_added` / `reaction_added` events that feed the timeline."""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.incidents import parse, views
from commands.incidents.service import IncidentService
from core.errors import UserInputError
from core.interactions import Event, Interaction, OnAction, OnEvent, OnView, SlackEvents, listen
from core.router import Ack, Invocation, Subcommand, ephemeral
from integrations.slack.blocks import state_value


def _opened_reply(created: bool, channel_id: str, channel_name: str) -> str:
    where = f"<#{channel_id}>" if channel_id else f"#{channel_name}"
    if created:
        return f":rotating_light: Opening the incident: {where}. You are being invited."
    return f"That incident is already open: {where}."


async def incident(
    incidents: IncidentService, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    catalog = incidents.catalog
    request = parse.parse(invocation.args, catalog)
    if request is None:
        await ack()
        await incidents.client.views_open(
            trigger_id=invocation.trigger_id,
            view=views.open_form([s.name for s in catalog.services], invocation.channel_id),
        )
        return
    if isinstance(request, parse.OpenRequest):
        await ack()
        opened, created = await incidents.open(
            invocation.actor, request, key=f"incident:{invocation.trigger_id}"
        )
        reply = _opened_reply(created, opened.channel_id, opened.channel_name)
        await respond(**ephemeral(reply))
        return
    current = await incidents.in_channel(invocation.channel_id)
    await ack()
    if request.verb == "update":
        await incidents.update(invocation.actor, current, request.text)
        await respond(**ephemeral("Update posted."))
    elif request.verb == "severity":
        changed = await incidents.change_severity(invocation.actor, current, request.text)
        note = f"Severity is now {request.text}." if changed else "Severity unchanged."
        await respond(**ephemeral(note))
    else:
        done = await incidents.resolve(invocation.actor, current, request.text)
        note = (
            "Resolving: summary and postmortem draft on their way."
            if done
            else "This incident is already resolved."
        )
        await respond(**ephemeral(note))


async def form_submitted(incidents: IncidentService, i: Interaction) -> None:
    title = state_value(i.values, "title").strip()
    if not title:
        await i.ack(response_action="errors", errors={"title": "Give the incident a title."})
        return
    severity = parse.severity_of(state_value(i.values, "severity")) or parse.DEFAULT_SEVERITY
    service = state_value(i.values, "service")
    if service and incidents.catalog.service(service) is None:
        await i.ack(response_action="errors", errors={"service": "Unknown service."})
        return
    await i.ack()
    request = parse.OpenRequest(
        title[: parse.TITLE_MAX],
        severity,
        service,
        state_value(i.values, "summary").strip()[: parse.TEXT_MAX],
    )
    opened, created = await incidents.open(
        i.actor, request, key=f"incident:view:{i.view.get('id', '')}"
    )
    text = _opened_reply(created, opened.channel_id, opened.channel_name)
    origin = str(i.view.get("private_metadata") or "")
    if origin:
        await incidents.slack.post_ephemeral(origin, i.actor.user_id, text)
    else:
        await incidents.slack.dm(i.actor.user_id, text)


async def take_role(incidents: IncidentService, role: str, i: Interaction) -> None:
    await i.ack()
    try:
        incident_id = int(i.value)
    except ValueError:
        raise UserInputError("That button no longer points at an incident.") from None
    taken = await incidents.take_role(i.actor, incident_id, role)
    if not taken:
        await i.reply(f"You already are the {views.ROLES[role]}.")


async def pinned(incidents: IncidentService, events: SlackEvents, e: Event) -> None:
    if not await events.first_delivery(e):
        return
    message = e.item.get("message") or {}
    ts = str(message.get("ts") or e.item.get("ts") or "")
    if ts:
        await incidents.record_pin(e.channel_id, ts, e.actor.user_id, str(message.get("text", "")))


async def unpinned(e: Event) -> None:
    """Acked and ignored: the timeline keeps what was pinned once."""


async def reacted(incidents: IncidentService, events: SlackEvents, e: Event) -> None:
    reaction = str(e.event.get("reaction", ""))
    # Checked before the database is asked: most reactions are not for the timeline.
    if e.item.get("type") != "message" or reaction != incidents.timeline_reaction:
        return
    if not await events.first_delivery(e):
        return
    await incidents.record_reaction(
        e.channel_id, str(e.item.get("ts", "")), e.actor.user_id, reaction
    )


def register(app: AsyncApp, ctx: AppContext) -> None:
    incidents, events = ctx.incidents, ctx.events
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
            handler=partial(incident, incidents),
            examples=[
                "/forge incident SEV2 checkout returns 500s",
                "/forge incident update rolled back, error rate falling",
                "/forge incident resolve",
            ],
        )
    )
    listen(
        app,
        ctx.boundary,
        [
            OnView(views.OPEN_FORM, "incident.form", partial(form_submitted, incidents)),
            OnAction(
                views.TAKE_COMMANDER,
                "incident.commander",
                partial(take_role, incidents, "commander"),
            ),
            OnAction(
                views.TAKE_COMMUNICATIONS,
                "incident.communications",
                partial(take_role, incidents, "communications"),
            ),
            OnEvent("pin_added", "incident.pin", partial(pinned, incidents, events)),
            OnEvent("pin_removed", "incident.unpin", unpinned),
            OnEvent("reaction_added", "incident.reaction", partial(reacted, incidents, events)),
        ],
    )
