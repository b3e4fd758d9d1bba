"""Publishes the App Home tab on `app_home_opened` (deduplicated by event id)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.context import AppContext
from commands.home import views
from core.auth import Actor
from core.router import Ack
from storage import idempotency

HomeSection = Callable[[str], Awaitable[list[dict[str, Any]]]]
"""Given a user id, the blocks a capability shows on that user's Home tab."""


def register(app: AsyncApp, ctx: AppContext, sections: list[HomeSection]) -> None:
    async def publish(user_id: str) -> None:
        parts = [await section(user_id) for section in sections]
        teams = [t.name for t in ctx.auth.teams_of(user_id)]
        await ctx.slack_client.views_publish(
            user_id=user_id, view=views.home_view(user_id, teams, [p for p in parts if p])
        )

    ctx.extras["publish_home"] = publish

    @app.event("app_home_opened")
    async def on_home_opened(body: dict[str, Any], event: dict[str, Any], ack: Any) -> None:
        user_id = str(event.get("user", ""))
        event_id = str(body.get("event_id", ""))
        safe_ack = Ack(ack)

        async def work() -> None:
            await safe_ack()
            if event.get("tab", "home") != "home":
                return
            if event_id:
                now = ctx.clock.now()
                first = await ctx.db.run(lambda s: idempotency.claim(s, f"event:{event_id}", now))
                if not first:
                    return  # a Slack retry of an event already handled
            await publish(user_id)

        await ctx.boundary.run(
            "home.opened",
            Actor(user_id=user_id, slack_team_id=str(body.get("team_id", ""))),
            "",
            {"event_id": event_id},
            safe_ack,
            None,
            work,
            audit=False,
        )
