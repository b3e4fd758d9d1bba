"""Slack listeners of `/forge scale`: the command, and the confirmation's two buttons."""

from __future__ import annotations

import json
from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.scale import parse, views
from commands.scale.service import ScaleService
from core.errors import UserInputError
from core.interactions import Interaction, OnAction, listen
from core.router import Ack, Invocation, Subcommand, ephemeral


async def scale_command(
    scales: ScaleService, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    request = parse.parse_scale(invocation.args, scales.catalog)  # bad input answers in the ack
    scales.check_may(invocation.actor, request)  # refused before any work
    await ack()
    plan = await scales.plan(invocation.actor, request)
    if plan.confirm:
        await respond(**ephemeral(*views.confirm(plan)))
        return
    started = await scales.start(
        invocation.actor, plan, invocation.channel_id, key=f"command:{invocation.trigger_id}"
    )
    await respond(**ephemeral(views.started_text(plan, started)))


def _asked(i: Interaction, scales: ScaleService) -> parse.ScaleRequest:
    try:
        value = json.loads(i.value)
        words = f"{value['service']} {value['environment']} {int(value['replicas'])}"
        reason = str(value.get("reason") or "")
    except (ValueError, KeyError, TypeError):
        raise UserInputError("That button no longer points at a scale request.") from None
    if reason:
        words += f" {parse.BREAK_GLASS} {reason}"
    return parse.parse_scale(words, scales.catalog)


async def confirm_scale(scales: ScaleService, i: Interaction) -> None:
    await i.ack()
    # Rights, the freeze and the autoscaler are checked again, as the one who pressed.
    plan = await scales.plan(i.actor, _asked(i, scales))
    message_ts = str((i.body.get("container") or {}).get("message_ts", ""))
    started = await scales.start(i.actor, plan, i.channel_id, key=f"confirm:{message_ts}:{i.value}")
    if i.respond is not None:
        await i.respond(text=views.started_text(plan, started), replace_original=True)


async def cancel_scale(scales: ScaleService, i: Interaction) -> None:
    await i.ack()
    request = _asked(i, scales)
    if i.respond is not None:
        await i.respond(
            text=f"Not scaled: {request.service} in {request.environment} keeps its replicas.",
            replace_original=True,
        )


def register(app: AsyncApp, ctx: AppContext) -> None:
    scales = ctx.scales
    ctx.router.add(
        Subcommand(
            name="scale",
            summary="set a service's replica count in an environment (not while an HPA owns it)",
            usage=["scale SERVICE ENV REPLICAS [break-glass REASON]"],
            handler=partial(scale_command, scales),
            examples=["/forge scale checkout staging 4", "/forge scale checkout prod 6"],
        )
    )
    listen(
        app,
        ctx.boundary,
        [
            OnAction(views.SCALE_CONFIRM, "scale", partial(confirm_scale, scales)),
            OnAction(views.SCALE_CANCEL, "scale.cancel", partial(cancel_scale, scales)),
        ],
    )
