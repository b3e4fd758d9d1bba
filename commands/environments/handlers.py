"""Slack listeners for environments: ack fast, call the service, render with views."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.environments import parse, views
from commands.environments.notifications import SlackEnvironmentNotifier
from commands.environments.service import (
    PROVISION_STEPS,
    EnvironmentService,
    Extension,
    NamespaceProvisioner,
)
from core.auth import Action
from core.durations import DurationError, format_duration, parse_duration
from core.errors import NotAuthorized, UserInputError
from core.interactions import Interaction, on_action, on_block_action, on_view
from core.router import Ack, Invocation, Subcommand, ephemeral, usage_lines
from core.scheduler import JobSpec
from core.times import shown
from storage import environments as env_repo
from storage import offhours as offhours_repo
from storage.models import EnvState
from storage.offhours import OffhoursState


def register(app: AsyncApp, ctx: AppContext, kube: NamespaceProvisioner) -> EnvironmentService:
    service = EnvironmentService(
        catalog=ctx.catalog,
        db=ctx.db,
        clock=ctx.clock,
        auth=ctx.auth,
        operations=ctx.operations,
        kube=kube,
        notify=SlackEnvironmentNotifier(ctx.slack, ctx.clock, PROVISION_STEPS),
        audit=ctx.audit,
    )
    service.register_operations()
    catalog, boundary = ctx.catalog, ctx.boundary

    def modal_for(
        template_name: str | None, size: str | None, ttl_text: str | None, metadata: dict[str, str]
    ) -> dict[str, Any]:
        template = catalog.template(template_name or "") or catalog.templates[0]
        chosen_size = size if size in template.sizes else next(iter(template.sizes))
        ttl = ttl_text or _format_ttl(template.default_ttl)
        try:
            price = service.price(template, chosen_size, parse_duration(ttl))
        except DurationError:
            price = None
        return views.request_modal(catalog, template, chosen_size, ttl, price, metadata)

    async def open_request(trigger_id: str, channel_id: str, actor_user: str) -> None:
        if not catalog.templates:
            raise UserInputError(
                "The catalog has no environment templates yet; ask the platform team."
            )
        await ctx.slack_client.views_open(
            trigger_id=trigger_id, view=modal_for(None, None, None, {"channel": channel_id})
        )

    async def command(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        # Verbs other capabilities add to `/env` (e.g. off-hours' `wake`).
        extra = ctx.env_verbs.get(invocation.args.partition(" ")[0].lower())
        if extra is not None:
            await extra(invocation, ack, respond)
            return
        cmd = parse.parse_command(invocation.args)
        if cmd.verb == "request":
            service.requester_team(
                invocation.actor
            )  # refuse before opening a form they can't submit
            await ack()
            await open_request(
                invocation.trigger_id, invocation.channel_id, invocation.actor.user_id
            )
            return
        await ack()
        now = ctx.clock.now()
        if cmd.verb == "list":
            records = await service.list(invocation.actor, cmd.scope)
            text, blocks = views.environment_list(
                records, cmd.scope, now, await _asleep([r.name for r in records])
            )
            await respond(**ephemeral(text, blocks))
        elif cmd.verb == "show":
            record = await service.find(cmd.name)
            text, blocks = views.environment_detail(record, now, await _actual_cost(record.name))
            await respond(**ephemeral(text, blocks))
        elif cmd.verb == "extend":
            assert cmd.extend_by is not None
            extension = await service.accept_extend(
                invocation.actor, cmd.name, cmd.extend_by, key=invocation.trigger_id
            )
            if extension is not None:  # a retry of the same request is answered once
                await respond(**ephemeral(_extension_text(extension, now)))
        elif cmd.verb == "delete":
            record = await service.deletable(invocation.actor, cmd.name)
            text, blocks = views.confirm_delete(record)
            await respond(**ephemeral(text, blocks))

    ctx.router.add(
        Subcommand(
            name="env",
            summary="request, list, extend and delete your environments",
            usage=usage_lines(parse.USAGE),
            handler=command,
            examples=[
                "/env request",
                "/env list team",
                "/env extend pv-checkout 2d",
                "/env delete pv-checkout",
            ],
        )
    )

    # --- the request modal -------------------------------------------------------------------
    async def modal_changed(i: Interaction) -> None:
        await i.ack()
        values = i.values
        template = parse._selected(values, parse.TEMPLATE)
        size = parse._selected(values, parse.SIZE)
        ttl = parse._text(values, parse.TTL)
        if i.action.get("block_id") == parse.TEMPLATE:
            chosen = catalog.template(template)
            ttl = _format_ttl(chosen.default_ttl) if chosen else ttl
        metadata = json.loads(i.view.get("private_metadata") or "{}")
        await ctx.slack_client.views_update(
            view_id=i.view.get("id", ""),
            hash=i.view.get("hash"),
            view=modal_for(template, size, ttl, metadata),
        )

    for block_id in (parse.TEMPLATE, parse.SIZE, parse.TTL):
        on_block_action(
            app,
            boundary,
            {"block_id": block_id, "action_id": "value"},
            f"env.modal.{block_id}",
            modal_changed,
        )

    async def submitted(i: Interaction) -> None:
        form, errors = parse.parse_form(i.values, catalog)
        if form is not None and not await service.name_available(form.name):
            errors = {parse.NAME: f"{form.name} is taken; pick another name."}
        if errors or form is None:
            await i.ack(response_action="errors", errors=errors)
            return
        await service.accept_request(i.actor, form, key=i.trigger_id, ack=i.ack)

    on_view(app, boundary, views.REQUEST_CALLBACK, "env.request", submitted)

    async def open_from_home(i: Interaction) -> None:
        service.requester_team(i.actor)
        await i.ack()
        await open_request(i.trigger_id, i.channel_id, i.actor.user_id)

    on_action(app, boundary, views.OPEN_REQUEST, "env.request.open", open_from_home)

    # --- approval --------------------------------------------------------------------------
    async def approve(i: Interaction) -> None:
        await i.ack()
        await service.decide(i.actor, int(i.value), approve=True)

    on_action(app, boundary, views.APPROVE, "env.approve", approve)

    async def deny(i: Interaction) -> None:
        await i.ack()
        record = await service._get(int(i.value))
        decision = service.auth.authorize(i.actor, Action.ENV_APPROVE)  # decide() checks again
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ENV_APPROVE))
        if record.state != EnvState.PENDING:
            await service._already_decided(record.id)  # type: ignore[arg-type]
        await ctx.slack_client.views_open(
            trigger_id=i.trigger_id,
            view=views.deny_modal(int(i.value), record.name, {"channel": i.channel_id}),
        )

    on_action(app, boundary, views.DENY, "env.deny.open", deny)

    async def deny_reason(i: Interaction) -> None:
        reason = parse._text(i.values, "reason").strip()
        if not reason:
            await i.ack(
                response_action="errors", errors={"reason": "Say why, so the requester can fix it."}
            )
            return
        await i.ack()
        env_id = int(json.loads(i.view.get("private_metadata") or "{}").get("env_id", 0))
        await service.decide(i.actor, env_id, approve=False, reason=reason)

    on_view(app, boundary, views.DENY_CALLBACK, "env.deny", deny_reason)

    # --- lifecycle buttons -------------------------------------------------------------------
    async def extend_day(i: Interaction) -> None:
        await i.ack()
        extension = await service.extend(i.actor, i.value, timedelta(days=1))
        await _tell(i, _extension_text(extension, ctx.clock.now()))

    on_action(app, boundary, views.EXTEND_DAY, "env.extend", extend_day)

    async def decide_extension(i: Interaction, approve: bool) -> None:
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

    async def approve_extension(i: Interaction) -> None:
        await decide_extension(i, True)

    async def deny_extension(i: Interaction) -> None:
        await decide_extension(i, False)

    on_action(app, boundary, views.EXTEND_APPROVE, "env.extend.approve", approve_extension)
    on_action(app, boundary, views.EXTEND_DENY, "env.extend.deny", deny_extension)

    async def delete_now(i: Interaction) -> None:
        await i.ack()
        record = await service.deletable(i.actor, i.value)
        text, blocks = views.confirm_delete(record)
        if i.respond is not None:
            await i.respond(**ephemeral(text, blocks))
        else:
            await ctx.slack.dm(i.actor.user_id, text, blocks)

    on_action(app, boundary, views.DELETE_NOW, "env.delete.ask", delete_now)

    async def confirm_delete(i: Interaction) -> None:
        await i.ack()
        record = await service.delete(i.actor, i.value)
        await _tell(i, f":wastebasket: Deleting {record.name}…", replace=True)

    on_action(app, boundary, views.CONFIRM_DELETE, "env.delete", confirm_delete)

    async def keep(i: Interaction) -> None:
        await i.ack()
        await _tell(i, f"Kept {i.value}: nothing was deleted.", replace=True)

    on_action(app, boundary, views.CANCEL_DELETE, "env.delete.cancel", keep)

    # --- schedule and App Home -----------------------------------------------------------------
    scheduler = ctx.scheduler
    if scheduler is not None:
        scheduler.add(
            JobSpec("env-ttl", catalog.schedules.ttl_sweep_interval, service.sweep_expiry)
        )

    async def _asleep(names: list[str]) -> frozenset[str]:
        # Off-hours records whether an environment is scaled down; list it as asleep then.
        found = await ctx.db.run(lambda s: offhours_repo.settings(s, names))
        return frozenset(n for n, row in found.items() if row.state == OffhoursState.ASLEEP)

    async def _actual_cost(name: str) -> str:
        # The cost capability (when AWS is configured) registers this; it never raises.
        cost_line = ctx.environment_cost
        return str(await cost_line(name)) if cost_line is not None else ""

    async def home(user_id: str) -> list[dict[str, Any]]:
        records = await ctx.db.run(lambda s: env_repo.live(s, owner=user_id))
        active = [r.name for r in records if r.state == EnvState.ACTIVE][:10]
        costs = {name: await _actual_cost(name) for name in active}
        return views.home_section(records, ctx.clock.now(), costs)

    ctx.home_sections.append(home)
    ctx.environments = service
    return service


async def _tell(i: Interaction, text: str, *, replace: bool = False) -> None:
    if i.respond is not None:
        await i.respond(text=text, response_type="ephemeral", replace_original=replace)


def _extension_text(extension: Extension, now: datetime) -> str:
    name = extension.record.name
    if extension.pending:
        return (
            f":hourglass: Keeping {name} until {shown(extension.until)} is beyond what its "
            "template allows; the platform team has been asked to approve it."
        )
    return f":hourglass: {name} now expires {views.expires_text(extension.record.expires_at, now)}."


def _format_ttl(delta: timedelta) -> str:
    return format_duration(delta)
