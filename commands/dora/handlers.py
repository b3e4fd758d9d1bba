"""`/forge dora` listener."""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.dora import views
from commands.dora.service import DoraService
from core.router import Ack, Invocation, Subcommand, ephemeral


async def dora(
    service: DoraService, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    query = service.parse(invocation.actor, invocation.args)  # bad input answers in the ack
    await ack()
    text, blocks = views.dora_report(await service.report(query))
    await respond(**ephemeral(text, blocks))


def register(app: AsyncApp, ctx: AppContext) -> None:
    ctx.router.add(
        Subcommand(
            name="dora",
            summary="deployment frequency, lead time, change failure rate and time to restore",
            usage=["dora [SERVICE|TEAM] [30d] [env ENV]"],
            handler=partial(dora, ctx.dora),
            examples=[
                "/forge dora",
                "/forge dora checkout 90d",
                "/forge dora payments env staging",
            ],
        )
    )
