"""Channels for incidents: create, invite, pin and read one message, as Slack documents them.

Each call is safe to repeat (a resumed operation does): inviting someone already in the
channel and pinning a message already pinned count as done.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

INVITE_BATCH = 1000
"""conversations.invite takes at most 1,000 users per call."""


class NameTaken(Exception):
    pass


async def create_channel(client: AsyncWebClient, name: str) -> str:
    """Create a public channel; returns its id. Raises `NameTaken` if the name is in use."""
    try:
        response = await client.conversations_create(name=name, is_private=False)
    except SlackApiError as exc:
        if exc.response.get("error") == "name_taken":
            raise NameTaken(name) from None
        raise
    channel = response.get("channel") or {}
    return str(channel.get("id", ""))


async def invite(client: AsyncWebClient, channel: str, users: Sequence[str]) -> None:
    unique = list(dict.fromkeys(u for u in users if u))
    for start in range(0, len(unique), INVITE_BATCH):
        batch = unique[start : start + INVITE_BATCH]
        try:
            await client.conversations_invite(channel=channel, users=",".join(batch))
        except SlackApiError as exc:
            if exc.response.get("error") not in ("already_in_channel", "cant_invite_self"):
                raise


async def pin(client: AsyncWebClient, channel: str, ts: str) -> None:
    try:
        await client.pins_add(channel=channel, timestamp=ts)
    except SlackApiError as exc:
        if exc.response.get("error") != "already_pinned":
            raise


async def message_text(client: AsyncWebClient, channel: str, ts: str) -> str:
    """The text of one message (for a reaction's timeline entry); "" if Slack will not say."""
    try:
        response = await client.conversations_history(
            channel=channel, latest=ts, oldest=ts, inclusive=True, limit=1
        )
    except SlackApiError:
        return ""
    messages = response.get("messages") or []
    return str(messages[0].get("text", "")) if messages else ""
