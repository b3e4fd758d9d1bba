"""Slack listeners for environments: ack fast, call the service, render with views. The TTL
sweep is scheduled by the composition root."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.context import AppContext, EnvironmentCost
from commands.environments import parse, views
from commands.environments.service import EnvironmentService, Extension
from commands.offhours.service import OffhoursService
from core.clock import Clock
from core.durations import DurationError, format_duration, parse_duration
from core.errors import UserInputError
from core.interactions import Interaction, OnAction, OnBlockAction, OnView, listen
from core.router import Ack, CommandHandler, Invocation, Subcommand, ephemeral, usage_lines
from core.times import shown
from integrations.slack.blocks import state_value
from integrations.slack.web import SlackOutbox
from storage.models import EnvState


def _modal(
    service: EnvironmentService,
    template_name: str | None,
    size: str | None,
    ttl_text: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    catalog = service.catalog
    template = catalog.template(template_name or "") or catalog.templates[0]
    chosen_size = size if size in template.sizes else next(iter(template.sizes))
    ttl = ttl_text or format_duration(template.default_ttl)
    try:
        price = service.price(template, chosen_size, parse_duration(ttl))
    except DurationError:
        price = None
    return views.request_modal(catalog, template, chosen_size, ttl, price, metadata)


async def _open_request(
    service: EnvironmentService, client: AsyncWebClient, trigger_id: str, channel_id: str
) -> None:
    if not service.catalog.templates:
        raise UserInputError("The catalog has no environment templates yet; ask the platform team.")
    await client.views_open(
        trigger_id=trigger_id, view=_modal(service, None, None, None, {"channel": channel_id})
    )


async def env(
    service: EnvironmentService,
    offhours: OffhoursService,
    client: AsyncWebClient,
    environment_cost: EnvironmentCost,
    verbs: Mapping[str, CommandHandler],
    invocation: Invocation,
    ack: Ack,
    respond: AsyncRespond,
) -> None:
    # Verbs other capabilities add to `/env` (e.g. off-hours' `wake`).
    extra = verbs.get(invocation.args.partition(" ")[0].lower())
    if extra is not None:
        await extra(invocation, ack, respond)
        return
    cmd = parse.parse_command(invocation.args)
    if cmd.verb == "request":
        service.requester_team(invocation.actor)  # refuse before opening a form they can't submit
        await ack()
        await _open_request(service, client, invocation.trigger_id, invocation.channel_id)
        return
    await ack()
    now = service.clock.now()
    if cmd.verb == "list":
        records = await service.list(invocation.actor, cmd.scope)
        asleep = await offhours.asleep([r.name for r in records])
        waiting = (
            await service.pending_extensions(invocation.actor.user_id)
            if cmd.scope == "mine"
            else ()
        )
        text, blocks = views.environment_list(records, cmd.scope, now, asleep, waiting)
        await respond(**ephemeral(text, blocks))
    elif cmd.verb == "show":
        record = await service.find(cmd.name)
        cost = await environment_cost(record.name)
        await respond(**ephemeral(*views.environment_detail(record, now, cost)))
    elif cmd.verb == "extend":
        assert cmd.extend_by is not None
        extension = await service.accept_extend(
            invocation.actor, cmd.name, cmd.extend_by, key=invocation.trigger_id
        )
        if extension is not None:  # a retry of the same request is answered once
            await respond(**ephemeral(_extension_text(extension, now)))
    elif cmd.verb == "delete":
        record = await service.deletable(invocation.actor, cmd.name)
        await respond(**ephemeral(*views.confirm_delete(record)))


# --- the request modal ---------------------------------------------------------------------


async def modal_changed(
    service: EnvironmentService, client: AsyncWebClient, i: Interaction
) -> None:
    await i.ack()
    template = state_value(i.values, parse.TEMPLATE)
    size = state_value(i.values, parse.SIZE)
    ttl = state_value(i.values, parse.TTL)
    if i.action.get("block_id") == parse.TEMPLATE:
        chosen = service.catalog.template(template)
        ttl = format_duration(chosen.default_ttl) if chosen else ttl
    metadata = json.loads(i.view.get("private_metadata") or "{}")
    await client.views_update(
        view_id=i.view.get("id", ""),
        hash=i.view.get("hash"),
        view=_modal(service, template, size, ttl, metadata),
    )


async def submitted(service: EnvironmentService, i: Interaction) -> None:
    form, errors = parse.parse_form(i.values, service.catalog)
    if form is not None and not await service.name_available(form.name):
        errors = {parse.NAME: f"{form.name} is taken; pick another name."}
    if errors or form is None:
        await i.ack(response_action="errors", errors=errors)
        return
    await service.accept_request(i.actor, form, key=i.trigger_id, ack=i.ack)


async def open_from_home(
    service: EnvironmentService, client: AsyncWebClient, i: Interaction
) -> None:
    service.requester_team(i.actor)
    await i.ack()
    await _open_request(service, client, i.trigger_id, i.channel_id)


# --- approval ------------------------------------------------------------------------------


async def approve(service: EnvironmentService, i: Interaction) -> None:
    await i.ack()
    await service.decide(i.actor, int(i.value), approve=True)


async def deny(service: EnvironmentService, client: AsyncWebClient, i: Interaction) -> None:
    await i.ack()
    record = await service.deniable(i.actor, int(i.value))
    await client.views_open(
        trigger_id=i.trigger_id,
        view=views.deny_modal(int(i.value), record.name, {"channel": i.channel_id}),
    )


async def deny_reason(service: EnvironmentService, i: Interaction) -> None:
    reason = state_value(i.values, "reason").strip()
    if not reason:
        await i.ack(
            response_action="errors", errors={"reason": "Say why, so the requester can fix it."}
        )
        return
    await i.ack()
    env_id = int(json.loads(i.view.get("private_metadata") or "{}").get("env_id", 0))
    await service.decide(i.actor, env_id, approve=False, reason=reason)


# --- lifecycle buttons -----------------------------------------------------------------------


async def extend_day(service: EnvironmentService, i: Interaction) -> None:
    await i.ack()
    extension = await service.extend(i.actor, i.value, timedelta(days=1))
    await i.reply(_extension_text(extension, service.clock.now()))


async def decide_extension(service: EnvironmentService, approve: bool, i: Interaction) -> None:
    await i.ack()
    env_id, _, until = i.value.partition("|")
    extension = await service.decide_extension(
        i.actor, int(env_id), datetime.fromisoformat(until), approve=approve
    )
    text, blocks = views.extension_card(
        extension.record,
        extension.until,
        extension.record.owner_user_id,
        (i.actor.user_id, approve),
    )
    if i.respond is not None:
        await i.respond(text=text, blocks=blocks, replace_original=True)


async def delete_now(service: EnvironmentService, slack: SlackOutbox, i: Interaction) -> None:
    await i.ack()
    record = await service.deletable(i.actor, i.value)
    text, blocks = views.confirm_delete(record)
    if i.respond is not None:
        await i.respond(**ephemeral(text, blocks))
    else:
        await slack.dm(i.actor.user_id, text, blocks)


async def confirm_delete(service: EnvironmentService, i: Interaction) -> None:
    await i.ack()
    record = await service.delete(i.actor, i.value)
    await i.reply(f":wastebasket: Deleting {record.name}…", replace=True)


async def keep(i: Interaction) -> None:
    await i.ack()
    await i.reply(f"Kept {i.value}: nothing was deleted.", replace=True)


async def home_section(
    service: EnvironmentService, clock: Clock, environment_cost: EnvironmentCost, user_id: str
) -> list[dict[str, Any]]:
    records = await service.live_of(user_id)
    active = [r.name for r in records if r.state == EnvState.ACTIVE][:10]
    costs = {name: await environment_cost(name) for name in active}
    waiting = await service.pending_extensions(user_id)
    return views.home_section(records, clock.now(), costs, waiting)


def _extension_text(extension: Extension, now: datetime) -> str:
    name = extension.record.name
    if extension.pending:
        return (
            f":hourglass: Keeping {name} until {shown(extension.until)} is beyond what its "
            "template allows; the platform team has been asked to approve it."
        )
    return f":hourglass: {name} now expires {views.expires_text(extension.record.expires_at, now)}."


def register(app: AsyncApp, ctx: AppContext) -> None:
    service, client = ctx.environments, ctx.slack_client
    ctx.router.add(
        Subcommand(
            name="env",
            summary="request, list, extend and delete your environments",
            usage=usage_lines(parse.USAGE),
            handler=partial(
                env, service, ctx.offhours, client, ctx.environment_cost, ctx.env_verbs
            ),
            examples=[
                "/env request",
                "/env list team",
                "/env extend pv-checkout 2d",
                "/env delete pv-checkout",
            ],
        )
    )
    listen(
        app,
        ctx.boundary,
        [
            *(
                OnBlockAction(
                    {"block_id": block_id, "action_id": "value"},
                    f"env.modal.{block_id}",
                    partial(modal_changed, service, client),
                )
                for block_id in (parse.TEMPLATE, parse.SIZE, parse.TTL)
            ),
            OnView(views.REQUEST_CALLBACK, "env.request", partial(submitted, service)),
            OnAction(
                views.OPEN_REQUEST, "env.request.open", partial(open_from_home, service, client)
            ),
            OnAction(views.APPROVE, "env.approve", partial(approve, service)),
            OnAction(views.DENY, "env.deny.open", partial(deny, service, client)),
            OnView(views.DENY_CALLBACK, "env.deny", partial(deny_reason, service)),
            OnAction(views.EXTEND_DAY, "env.extend", partial(extend_day, service)),
            OnAction(
                views.EXTEND_APPROVE,
                "env.extend.approve",
                partial(decide_extension, service, True),
            ),
            OnAction(
                views.EXTEND_DENY, "env.extend.deny", partial(decide_extension, service, False)
            ),
            OnAction(views.DELETE_NOW, "env.delete.ask", partial(delete_now, service, ctx.slack)),
            OnAction(views.CONFIRM_DELETE, "env.delete", partial(confirm_delete, service)),
            OnAction(views.CANCEL_DELETE, "env.delete.cancel", keep),
        ],
    )
