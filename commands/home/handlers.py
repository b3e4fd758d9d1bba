"""Publishes the App Home tab on `app_home_opened` (deduplicated by event id). Its sections,
in order, are listed by the composition root (`ctx.home_sections`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.context import AppContext, HomeSection
from commands.home import views
from core.auth import Authorizer
from core.interactions import Event, OnEvent, SlackEvents, listen


async def publish(
    client: AsyncWebClient, auth: Authorizer, sections: Sequence[HomeSection], user_id: str
) -> None:
    parts = [await section(user_id) for section in sections]
    teams = [t.name for t in auth.teams_of(user_id)]
    await client.views_publish(
        user_id=user_id, view=views.home_view(user_id, teams, [p for p in parts if p])
    )


async def home_opened(
    events: SlackEvents,
    client: AsyncWebClient,
    auth: Authorizer,
    sections: Sequence[HomeSection],
    event: Event,
) -> None:
    if event.event.get("tab", "home") != "home":
        return
    if not await events.first_delivery(event):
        return  # a Slack retry of an event already handled
    await publish(client, auth, sections, event.actor.user_id)


def register(app: AsyncApp, ctx: AppContext) -> None:
    listen(
        app,
        ctx.boundary,
        [
            OnEvent(
                "app_home_opened",
                "home.opened",
                partial(home_opened, ctx.events, ctx.slack_client, ctx.auth, ctx.home_sections),
            ),
        ],
    )
