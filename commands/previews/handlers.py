"""Previews in Slack: `/forge previews [team|all]`, the buttons of a preview's message and its
App Home section. Its webhook routes and resync job are wired by the composition root."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.previews import views
from commands.previews.service import PreviewService
from core.auth import Authorizer
from core.interactions import Interaction, OnAction, listen
from core.router import Ack, Invocation, Subcommand, ephemeral


async def previews(
    service: PreviewService,
    auth: Authorizer,
    invocation: Invocation,
    ack: Ack,
    respond: AsyncRespond,
) -> None:
    scope = invocation.args.strip().lower()
    if scope and scope != "all":
        service.check_team(scope)  # a wrong name is answered in the ack
    await ack()
    if scope == "all":
        teams: list[str] | None = None
    elif scope:
        teams = [scope]
    else:
        mine = [t.name for t in auth.teams_of(invocation.actor.user_id)]
        teams, scope = (mine, "your teams") if mine else (None, "all")
    text, blocks = views.preview_list(await service.list(teams), scope)
    await respond(**ephemeral(text, blocks))


async def extend(service: PreviewService, i: Interaction) -> None:
    await i.ack()
    await i.reply(await service.extend(i.actor, i.value, timedelta(days=1)))


async def delete(service: PreviewService, i: Interaction) -> None:
    await i.ack()
    await i.reply(await service.delete_now(i.actor, i.value))


async def keep_awake(service: PreviewService, i: Interaction) -> None:
    await i.ack()
    await i.reply(await service.keep_awake(i.actor, i.value))


async def home_section(
    auth: Authorizer, service: PreviewService, user_id: str
) -> list[dict[str, Any]]:
    teams = [t.name for t in auth.teams_of(user_id)]
    return views.home_section(await service.list(teams)) if teams else []


def register(app: AsyncApp, ctx: AppContext) -> None:
    service = ctx.previews
    ctx.router.add(
        Subcommand(
            name="previews",
            summary="pull request previews with their age, cost and state",
            usage=["previews [TEAM|all]"],
            handler=partial(previews, service, ctx.auth),
            examples=["/forge previews", "/forge previews payments", "/forge previews all"],
        )
    )
    listen(
        app,
        ctx.boundary,
        [
            OnAction(views.EXTEND, "preview.extend", partial(extend, service)),
            OnAction(views.DELETE, "preview.delete", partial(delete, service)),
            OnAction(views.KEEP_AWAKE, "preview.keep_awake", partial(keep_awake, service)),
        ],
    )
