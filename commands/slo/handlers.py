"""`/forge slo` (alias `/slo`) and the alert buttons. The deploy gate and the alert job are
wired by the composition root."""

from __future__ import annotations

import json
from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.deploy import parse as deploy_parse
from commands.deploy import views as deploy_views
from commands.deploy.freeze import FreezeService
from commands.deploy.rollback import RollbackService
from commands.slo import views
from commands.slo.budget import worst_first
from commands.slo.service import SloService
from core.auth import Authorizer
from core.catalog import Catalog
from core.clock import Clock
from core.durations import parse_duration
from core.errors import UserInputError
from core.interactions import Interaction, OnAction, OnView, listen
from core.router import Ack, Invocation, Subcommand, ephemeral
from core.times import shown
from integrations.prometheus import PrometheusUnavailable
from integrations.slack.web import SlackOutbox


async def slo(service: SloService, invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
    query = service.parse(invocation.actor, invocation.args)  # bad input answers in the ack
    await ack()
    text, blocks = views.slo_report(await service.report(query))
    await respond(**ephemeral(text, blocks))


async def home_section(
    auth: Authorizer, catalog: Catalog, clock: Clock, service: SloService, user_id: str
) -> list[dict[str, object]]:
    team = auth.primary_team(user_id)
    if team is None or service.prometheus is None:
        return []
    refs = service.refs([s.name for s in catalog.services if s.team == team.name])
    if not refs:
        return []
    try:
        items = worst_first(await service.evaluate(refs, clock.now(), trend=False))
    except PrometheusUnavailable:
        return views.home_section(team.name, None)
    return views.home_section(team.name, items)


async def show(service: SloService, i: Interaction) -> None:
    await i.ack()
    query = service.parse(i.actor, i.value)
    text, blocks = views.slo_report(await service.report(query))
    await i.reply(text, blocks)


async def roll_back(rollbacks: RollbackService, i: Interaction) -> None:
    await i.ack()
    name, environment = i.value.split("|")
    plan = await rollbacks.plan(i.actor, deploy_parse.RollbackRequest(name, environment, None))
    await i.reply(*deploy_views.rollback_confirm(plan))


async def ask_freeze(freezes: FreezeService, i: Interaction) -> None:
    """ "Freeze deploys" on a burn alert: for which service is in the alert; how long is asked."""
    await i.ack()
    environment, _, key = i.value.partition("|")
    service = key.partition("/")[0]
    # Refused before the dialog opens, not after it is filled in.
    freezes.check_may_freeze(i.actor, environment, service)
    ends = freezes.clock.now() + parse_duration(views.FREEZE_DEFAULT)
    await i.client.views_open(
        trigger_id=i.trigger_id,
        view=views.freeze_modal(service, environment, key, i.channel_id, shown(ends)),
    )


async def freeze_service(freezes: FreezeService, slack: SlackOutbox, i: Interaction) -> None:
    """The dialog's answer: freeze the alert's service for the chosen time, say so in the
    alert's channel (service, end with its zone, who, why)."""
    await i.ack()
    asked = json.loads(i.view.get("private_metadata") or "{}")
    choice = (i.values.get(views.FREEZE_FOR, {}).get("value") or {}).get("selected_option") or {}
    chosen = str(choice.get("value") or views.FREEZE_DEFAULT)
    if chosen not in dict(views.FREEZE_CHOICES):
        raise UserInputError("Choose how long to freeze from the list.")
    duration = parse_duration(chosen)
    state = await freezes.freeze(
        i.actor,
        deploy_parse.FreezeRequest(
            str(asked.get("environment", "")),
            duration,
            f"error budget burn on {asked.get('slo', '')} (SLO burn alert)",
            service=str(asked.get("service", "")),
        ),
    )
    channel = str(asked.get("channel") or "")
    if channel:
        await slack.post(channel, deploy_views.frozen_text(state))


def register(app: AsyncApp, ctx: AppContext) -> None:
    ctx.router.add(
        Subcommand(
            name="slo",
            summary="SLOs: SLI, error budget left, burn rates and trend, worst first",
            usage=["slo [SERVICE|TEAM]"],
            handler=partial(slo, ctx.slos),
            examples=["/slo", "/slo checkout", "/forge slo payments"],
        )
    )
    listen(
        app,
        ctx.boundary,
        [
            OnAction(views.SHOW_SLO, "slo.show", partial(show, ctx.slos)),
            OnAction(views.ROLLBACK, "slo.rollback", partial(roll_back, ctx.rollbacks)),
            OnAction(views.FREEZE, "slo.freeze.open", partial(ask_freeze, ctx.freezes)),
            OnView(
                views.FREEZE_VIEW, "slo.freeze", partial(freeze_service, ctx.freezes, ctx.slack)
            ),
        ],
    )
