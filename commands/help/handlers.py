"""`/forge help [command]`: answered in the ack itself, it needs nothing but the router."""

from __future__ import annotations

import functools
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.help import views
from core.errors import UserInputError
from core.router import Ack, Invocation, Subcommand


def register(ctx: AppContext) -> None:
    router = ctx.router

    @functools.cache
    def overview() -> list[dict[str, Any]]:
        # Subcommands are fixed once the app is built, so the overview is built once.
        return views.overview(list(router.subcommands.values()))

    async def handle(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        topic = invocation.args.split(" ", 1)[0].lower() if invocation.args else ""
        if not topic:
            blocks = overview()
            await ack(text="forgebot commands", blocks=blocks, response_type="ephemeral")
            return
        sub = router.subcommands.get(topic)
        if sub is None:
            raise UserInputError(router.unknown_message(topic))
        await ack(text=f"/forge {sub.name}", blocks=views.detail(sub), response_type="ephemeral")

    router.add(
        Subcommand(
            name="help",
            summary="what forgebot can do, and how to ask",
            usage=["help", "help <command>"],
            handler=handle,
            examples=["/forge help", "/forge help env"],
        )
    )
