"""Buttons and modal submissions, registered through the same `Boundary` as commands, so every
interaction is acked, audited, counted and protected from leaking errors."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from core.auth import Actor
from core.clock import Clock
from core.router import Ack, Boundary, ephemeral
from storage import idempotency
from storage.db import Database


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

    async def reply(
        self, text: str, blocks: Sequence[Mapping[str, Any]] | None = None, *, replace: bool = False
    ) -> None:
        """An ephemeral answer to whoever clicked, below the message (or in its place). A modal
        has no `response_url`: there the handler answers through the outbox instead."""
        if self.respond is not None:
            await self.respond(
                **ephemeral(text, [dict(b) for b in blocks] if blocks else None),
                replace_original=replace,
            )


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


class _ActionListener:
    """What bolt calls for a button or select: a named object, not a closure, so a traceback
    and the listener table name the handler it serves (`.handler`)."""

    def __init__(self, boundary: Boundary, name: str, handler: InteractionHandler) -> None:
        self.boundary, self.name, self.handler = boundary, name, handler

    async def __call__(
        self, body: dict[str, Any], ack: AsyncAck, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await _run(
            self.boundary,
            self.name,
            body,
            Ack(ack),
            respond if body.get("response_url") else None,
            client,
            self.handler,
        )


class _ModalListener:
    """What bolt calls for an element inside a modal, or a modal's submission."""

    def __init__(self, boundary: Boundary, name: str, handler: InteractionHandler) -> None:
        self.boundary, self.name, self.handler = boundary, name, handler

    async def __call__(self, body: dict[str, Any], ack: AsyncAck, client: AsyncWebClient) -> None:
        await _run(self.boundary, self.name, body, Ack(ack), None, client, self.handler)


def on_action(
    app: AsyncApp, boundary: Boundary, action_id: str, name: str, handler: InteractionHandler
) -> None:
    app.action(action_id)(_ActionListener(boundary, name, handler))


def on_block_action(
    app: AsyncApp,
    boundary: Boundary,
    constraints: dict[str, str | re.Pattern[Any]],
    name: str,
    handler: InteractionHandler,
) -> None:
    """For elements inside modals (e.g. a select with dispatch_action), matched by block and action."""
    app.block_action(dict(constraints))(_ModalListener(boundary, name, handler))


def on_view(
    app: AsyncApp, boundary: Boundary, callback_id: str, name: str, handler: InteractionHandler
) -> None:
    app.view(callback_id)(_ModalListener(boundary, name, handler))


@dataclass
class Event:
    """A Slack Events API delivery (`app_home_opened`, `pin_added`, ...), acked already."""

    body: dict[str, Any]
    event: dict[str, Any]
    actor: Actor
    channel_id: str

    @property
    def item(self) -> dict[str, Any]:
        return dict(self.event.get("item") or {})


EventHandler = Callable[[Event], Awaitable[None]]


class _EventListener:
    def __init__(self, boundary: Boundary, name: str, handler: EventHandler) -> None:
        self.boundary, self.name, self.handler = boundary, name, handler

    async def __call__(self, body: dict[str, Any], event: dict[str, Any], ack: AsyncAck) -> None:
        safe_ack = Ack(ack)
        item = event.get("item") or {}
        channel = str(event.get("channel_id") or item.get("channel") or "")
        actor = Actor(
            user_id=str(event.get("user", "")), slack_team_id=str(body.get("team_id", ""))
        )
        delivered = Event(body, event, actor, channel)

        async def work() -> None:
            await safe_ack()  # Slack only needs to know the event arrived
            await self.handler(delivered)

        await self.boundary.run(
            self.name,
            actor,
            channel,
            {"event_id": str(body.get("event_id", ""))},
            safe_ack,
            None,
            work,
            audit=False,
        )


def on_event(
    app: AsyncApp, boundary: Boundary, event_type: str, name: str, handler: EventHandler
) -> None:
    app.event(event_type)(_EventListener(boundary, name, handler))


@dataclass(frozen=True)
class OnAction:
    """A button or select outside a modal, by `action_id`."""

    action_id: str
    name: str
    handler: InteractionHandler


@dataclass(frozen=True)
class OnBlockAction:
    """An element inside a modal (a select with dispatch_action), by block and action."""

    constraints: dict[str, str]
    name: str
    handler: InteractionHandler


@dataclass(frozen=True)
class OnView:
    """A modal's submission, by `callback_id`."""

    callback_id: str
    name: str
    handler: InteractionHandler


@dataclass(frozen=True)
class OnEvent:
    """An Events API event, by type."""

    event_type: str
    name: str
    handler: EventHandler


Listener = OnAction | OnBlockAction | OnView | OnEvent


def listen(app: AsyncApp, boundary: Boundary, listeners: Iterable[Listener]) -> None:
    """Register a capability's table of listeners, each behind the error boundary."""
    for entry in listeners:
        if isinstance(entry, OnAction):
            on_action(app, boundary, entry.action_id, entry.name, entry.handler)
        elif isinstance(entry, OnBlockAction):
            on_block_action(app, boundary, dict(entry.constraints), entry.name, entry.handler)
        elif isinstance(entry, OnView):
            on_view(app, boundary, entry.callback_id, entry.name, entry.handler)
        else:
            on_event(app, boundary, entry.event_type, entry.name, entry.handler)


@dataclass(frozen=True)
class SlackEvents:
    """Slack delivers an event again when it thinks the first delivery failed: the first
    delivery of an event id claims it in the database, a retry finds it claimed."""

    db: Database
    clock: Clock

    async def first_delivery(self, event: Event) -> bool:
        event_id = str(event.body.get("event_id", ""))
        if not event_id:
            return True
        now = self.clock.now()
        return bool(await self.db.run(lambda s: idempotency.claim(s, f"event:{event_id}", now)))


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
