"""Buttons and modal submissions, registered through the same `Boundary` as commands, so every
interaction is acked, audited, counted and protected from leaking errors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from core.auth import Actor
from core.router import Ack, Boundary


@dataclass
class Interaction:
    body: dict[str, Any]
    actor: Actor
    ack: Ack
    respond: AsyncRespond | None
    client: AsyncWebClient
    channel_id: str
    trigger_id: str

    @property
    def action(self) -> dict[str, Any]:
        actions = self.body.get("actions") or [{}]
        return dict(actions[0])

    @property
    def value(self) -> str:
        action = self.action
        option = action.get("selected_option") or {}
        return str(action.get("value") or option.get("value") or "")

    @property
    def view(self) -> dict[str, Any]:
        return dict(self.body.get("view") or {})

    @property
    def values(self) -> dict[str, Any]:
        return dict((self.view.get("state") or {}).get("values") or {})


InteractionHandler = Callable[[Interaction], Awaitable[None]]


def _actor(body: dict[str, Any]) -> Actor:
    user = body.get("user") or {}
    enterprise = body.get("enterprise") or {}
    return Actor(
        user_id=str(user.get("id", "")),
        slack_team_id=str(user.get("team_id") or (body.get("team") or {}).get("id", "")),
        enterprise_id=str(enterprise.get("id", "") if isinstance(enterprise, dict) else ""),
    )


def _channel(body: dict[str, Any]) -> str:
    channel = body.get("channel") or {}
    return str(channel.get("id", "")) if isinstance(channel, dict) else ""


def on_action(
    app: AsyncApp, boundary: Boundary, action_id: str, name: str, handler: InteractionHandler
) -> None:
    async def listener(
        body: dict[str, Any], ack: AsyncAck, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await _run(
            boundary,
            name,
            body,
            Ack(ack),
            respond if body.get("response_url") else None,
            client,
            handler,
        )

    app.action(action_id)(listener)


def on_block_action(
    app: AsyncApp,
    boundary: Boundary,
    constraints: dict[str, str | re.Pattern[Any]],
    name: str,
    handler: InteractionHandler,
) -> None:
    """For elements inside modals (e.g. a select with dispatch_action), matched by block and action."""

    async def listener(body: dict[str, Any], ack: AsyncAck, client: AsyncWebClient) -> None:
        await _run(boundary, name, body, Ack(ack), None, client, handler)

    app.block_action(dict(constraints))(listener)


def on_view(
    app: AsyncApp, boundary: Boundary, callback_id: str, name: str, handler: InteractionHandler
) -> None:
    async def listener(body: dict[str, Any], ack: AsyncAck, client: AsyncWebClient) -> None:
        await _run(boundary, name, body, Ack(ack), None, client, handler)

    app.view(callback_id)(listener)


async def _run(
    boundary: Boundary,
    name: str,
    body: dict[str, Any],
    ack: Ack,
    respond: AsyncRespond | None,
    client: AsyncWebClient,
    handler: InteractionHandler,
) -> None:
    interaction = Interaction(
        body, _actor(body), ack, respond, client, _channel(body), str(body.get("trigger_id", ""))
    )

    async def reply(message: dict[str, Any]) -> None:
        if respond is not None:
            await respond(**message)
        elif interaction.channel_id:
            await client.chat_postEphemeral(
                channel=interaction.channel_id,
                user=interaction.actor.user_id,
                text=message.get("text", ""),
            )
        else:
            opened = await client.conversations_open(users=[interaction.actor.user_id])
            await client.chat_postMessage(
                channel=opened["channel"]["id"], text=message.get("text", "")
            )

    arguments = {
        "action": interaction.action.get("action_id", ""),
        "value": interaction.value[:200],
    }
    if body.get("type") == "view_submission":
        arguments = {"callback_id": interaction.view.get("callback_id", "")}
    await boundary.run(
        name,
        interaction.actor,
        interaction.channel_id,
        arguments,
        ack,
        reply,
        lambda: handler(interaction),
    )
