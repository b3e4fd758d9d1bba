"""`/forge help [command]`: answered in the ack itself, it needs nothing but the router."""

from __future__ import annotations

import functools
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.help import views
from core.errors import UserInputError
from core.router import Ack, CommandRouter, Invocation, Subcommand


@functools.cache
def _overview(router: CommandRouter) -> list[dict[str, Any]]:
    # Subcommands are fixed once the app is built, so the overview is built once.
    return views.overview(list(router.subcommands.values()))


async def show_help(
    router: CommandRouter, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    topic = invocation.args.split(" ", 1)[0].lower() if invocation.args else ""
    if not topic:
        await ack(text="forgebot commands", blocks=_overview(router), response_type="ephemeral")
        return
    sub = router.subcommands.get(topic)
    if sub is None:
        raise UserInputError(router.unknown_message(topic))
    await ack(text=f"/forge {sub.name}", blocks=views.detail(sub), response_type="ephemeral")


def register(app: AsyncApp, ctx: AppContext) -> None:
    ctx.router.add(
        Subcommand(
            name="help",
            summary="what forgebot can do, and how to ask",
            usage=["help", "help <command>"],
            handler=functools.partial(show_help, ctx.router),
            examples=["/forge help", "/forge help env"],
        )
    )
