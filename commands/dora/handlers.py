"""`/forge dora` listener."""

from __future__ import annotations

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.dora import views
from commands.dora.service import DoraService
from core.router import Ack, Invocation, Subcommand, ephemeral


def register(ctx: AppContext) -> DoraService:
    service = DoraService(ctx.catalog, ctx.db, ctx.clock, ctx.auth)

    async def handle(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        query = service.parse(invocation.actor, invocation.args)  # bad input answers in the ack
        await ack()
        text, blocks = views.dora_report(await service.report(query))
        await respond(**ephemeral(text, blocks))

    ctx.router.add(
        Subcommand(
            name="dora",
            summary="deployment frequency, lead time, change failure rate and time to restore",
            usage=["dora [SERVICE|TEAM] [30d] [env ENV]"],
            handler=handle,
            examples=[
                "/forge dora",
                "/forge dora checkout 90d",
                "/forge dora payments env staging",
            ],
        )
    )
    return service
