"""Real Slack payload shapes, signed like Slack signs them: used by the tests and the shell.

Slash commands are form bodies; interactions are a form field `payload=<json>`; events are
JSON envelopes. `SignedSlackClient` posts them to the bot's `/slack/events`.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from integrations.slack.signing import compute_signature

_ids = itertools.count(1)


def _trigger() -> str:
    return f"{int(time.time())}.{next(_ids)}.sandboxtrigger"


@dataclass
class SlackIdentity:
    user_id: str
    team_id: str = "T0SANDBOX"
    user_name: str = "someone"
    channel_id: str = "C0PAYMENTS"
    channel_name: str = "payments"
    api_app_id: str = "A0FORGEBOT"
    enterprise_id: str | None = None


def slash_command(who: SlackIdentity, command: str, text: str, response_url: str) -> bytes:
    fields = {
        "token": "legacy-verification-token",
        "team_id": who.team_id,
        "team_domain": "sandbox",
        "channel_id": who.channel_id,
        "channel_name": who.channel_name,
        "user_id": who.user_id,
        "user_name": who.user_name,
        "command": command,
        "text": text,
        "api_app_id": who.api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": _trigger(),
    }
    if who.enterprise_id:
        fields["enterprise_id"] = who.enterprise_id
    return urlencode(fields).encode()


def _user(who: SlackIdentity) -> dict[str, Any]:
    return {
        "id": who.user_id,
        "username": who.user_name,
        "name": who.user_name,
        "team_id": who.team_id,
    }


def block_actions(
    who: SlackIdentity,
    action: dict[str, Any],
    *,
    response_url: str,
    message: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    channel_id: str | None = None,
) -> bytes:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(who),
        "api_app_id": who.api_app_id,
        "token": "legacy-verification-token",
        "trigger_id": _trigger(),
        "team": {"id": who.team_id, "domain": "sandbox"},
        "enterprise": {"id": who.enterprise_id} if who.enterprise_id else None,
        "is_enterprise_install": False,
        "actions": [{"action_ts": f"{time.time():.6f}", "type": "button", **action}],
    }
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id", "")}
        payload["view"] = view
    else:
        channel = channel_id or who.channel_id
        payload["container"] = {
            "type": "message",
            "message_ts": (message or {}).get("ts", ""),
            "channel_id": channel,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel, "name": who.channel_name}
        payload["message"] = message or {}
        payload["response_url"] = response_url
    return urlencode({"payload": json.dumps(payload)}).encode()


def view_submission(
    who: SlackIdentity, view: dict[str, Any], values: dict[str, dict[str, Any]]
) -> bytes:
    """`values` is Slack's `state.values`: block_id -> action_id -> element value object."""
    submitted = {**view, "state": {"values": values}}
    payload = {
        "type": "view_submission",
        "team": {"id": who.team_id, "domain": "sandbox"},
        "user": _user(who),
        "api_app_id": who.api_app_id,
        "token": "legacy-verification-token",
        "trigger_id": _trigger(),
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def app_home_opened(who: SlackIdentity, event_id: str | None = None) -> bytes:
    envelope = {
        "token": "legacy-verification-token",
        "team_id": who.team_id,
        "api_app_id": who.api_app_id,
        "event": {
            "type": "app_home_opened",
            "user": who.user_id,
            "channel": "D" + who.user_id[1:],
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": who.team_id, "user_id": "U0FORGEBOT", "is_bot": True}],
    }
    return json.dumps(envelope).encode()


@dataclass
class SignedResponse:
    status: int
    body: str
    headers: dict[str, str]
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class SignedSlackClient:
    """Posts bodies to `<base_url>/slack/events`, signed with `secret` like Slack does."""

    base_url: str
    secret: str
    clock_offset: float = 0.0
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def send(
        self,
        body: bytes,
        *,
        content_type: str | None = None,
        forge: bool = False,
        drop_headers: bool = False,
        timestamp: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> SignedResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        stamp = timestamp if timestamp is not None else str(int(time.time() + self.clock_offset))
        signature = compute_signature("not-the-secret" if forge else self.secret, stamp, body)
        headers = {
            "Content-Type": content_type
            or (
                "application/json" if body.startswith(b"{") else "application/x-www-form-urlencoded"
            ),
        }
        if not drop_headers:
            headers |= {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}
        headers |= extra_headers or {}
        started = time.perf_counter()
        async with self._session.post(
            f"{self.base_url}/slack/events", data=body, headers=headers
        ) as response:
            text = await response.text()
            return SignedResponse(
                response.status, text, dict(response.headers), time.perf_counter() - started
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
