"""Real Slack request payloads, signed like Slack signs them: for the tests and the shell.

Shapes follow what Slack sends to a Request URL:
- slash commands: an `application/x-www-form-urlencoded` body;
- interactions (`block_actions`, `view_submission`, `view_closed`): a form body with one
  field, `payload=<json>`;
- Events API: a JSON body (`event_callback` envelopes, `url_verification`).
`SignedSlackClient` POSTs them to `<base_url>/slack/events` with Slack's signature headers.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp

from integrations.slack.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, compute_signature

LEGACY_TOKEN = "legacy-verification-token"
"""Slack still sends the deprecated verification token; nothing may trust it."""

_counter = itertools.count(1)


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def trigger_id(now: float | None = None) -> str:
    return f"{int(_now(now))}.{next(_counter)}.{secrets.token_hex(16)}"


@dataclass(frozen=True)
class SlackIdentity:
    """Who is acting, and where: the signed ids Slack puts in every payload."""

    user_id: str
    team_id: str = "T0SANDBOX"
    user_name: str = "someone"
    channel_id: str = "C0PAYMENTS"
    channel_name: str = "payments"
    api_app_id: str = "A0FORGEBOT"
    enterprise_id: str | None = None
    team_domain: str = "sandbox"


def _form(fields: Mapping[str, str]) -> bytes:
    return urlencode(fields).encode()


def _interaction(payload: Mapping[str, Any]) -> bytes:
    return _form({"payload": json.dumps(payload, separators=(",", ":"))})


def _user(who: SlackIdentity) -> dict[str, Any]:
    return {
        "id": who.user_id,
        "username": who.user_name,
        "name": who.user_name,
        "team_id": who.team_id,
    }


def _team(who: SlackIdentity) -> dict[str, Any]:
    team: dict[str, Any] = {"id": who.team_id, "domain": who.team_domain}
    if who.enterprise_id:
        team["enterprise_id"] = who.enterprise_id
    return team


def _enterprise(who: SlackIdentity) -> dict[str, Any] | None:
    return {"id": who.enterprise_id, "name": "Sandbox Org"} if who.enterprise_id else None


# --- slash commands --------------------------------------------------------------------------


def slash_command(
    who: SlackIdentity,
    command: str,
    text: str,
    response_url: str,
    *,
    now: float | None = None,
) -> bytes:
    fields = {
        "token": LEGACY_TOKEN,
        "team_id": who.team_id,
        "team_domain": who.team_domain,
        "channel_id": who.channel_id,
        "channel_name": who.channel_name,
        "user_id": who.user_id,
        "user_name": who.user_name,
        "command": command,
        "text": text,
        "api_app_id": who.api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id(now),
    }
    if who.enterprise_id:
        fields["enterprise_id"] = who.enterprise_id
        fields["enterprise_name"] = "Sandbox Org"
    return _form(fields)


# --- block actions ---------------------------------------------------------------------------


def button_action(
    action_id: str, value: str = "", *, block_id: str = "actions", text: str = "Button"
) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "text": {"type": "plain_text", "text": text, "emoji": True},
    }


def select_action(
    action_id: str,
    option: Mapping[str, Any],
    *,
    block_id: str,
    kind: Literal["static_select", "radio_buttons", "overflow"] = "static_select",
) -> dict[str, Any]:
    return {
        "type": kind,
        "action_id": action_id,
        "block_id": block_id,
        "selected_option": dict(option),
    }


def block_actions(
    who: SlackIdentity,
    action: Mapping[str, Any],
    *,
    response_url: str,
    message: Mapping[str, Any] | None = None,
    view: Mapping[str, Any] | None = None,
    channel_id: str | None = None,
    now: float | None = None,
) -> bytes:
    """A click (or select) on a message's or a view's element.

    `action` needs at least action_id and block_id, plus `value` (buttons) or
    `selected_option` (selects); `type` defaults to button.
    """
    moment = _now(now)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(who),
        "api_app_id": who.api_app_id,
        "token": LEGACY_TOKEN,
        "trigger_id": trigger_id(moment),
        "team": _team(who),
        "enterprise": _enterprise(who),
        "is_enterprise_install": False,
        "actions": [{"type": "button", **action, "action_ts": f"{moment:.6f}"}],
    }
    if view is not None:
        submitted = _as_slack_view(who, view)
        payload["container"] = {"type": "view", "view_id": submitted["id"]}
        payload["view"] = submitted
    else:
        channel = channel_id or who.channel_id
        shown = dict(message or {})
        payload["container"] = {
            "type": "message",
            "message_ts": str(shown.get("ts", "")),
            "channel_id": channel,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel, "name": who.channel_name}
        payload["message"] = {"type": "message", "text": "", "blocks": [], **shown}
        payload["state"] = {"values": {}}
        payload["response_url"] = response_url
    return _interaction(payload)


# --- views -----------------------------------------------------------------------------------


def _as_slack_view(
    who: SlackIdentity, view: Mapping[str, Any], values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The view as Slack includes it in payloads: ids, hash and `state.values` filled in."""
    shown = dict(view)
    view_id = str(shown.get("id") or f"V{next(_counter):010d}")
    shown.setdefault("team_id", who.team_id)
    shown.setdefault("type", "modal")
    shown.setdefault("blocks", [])
    shown.setdefault("private_metadata", "")
    shown.setdefault("callback_id", "")
    shown.setdefault("hash", f"{int(time.time())}.{secrets.token_hex(4)}")
    shown.setdefault("root_view_id", view_id)
    shown.setdefault("previous_view_id", None)
    shown.setdefault("app_id", who.api_app_id)
    shown.setdefault("external_id", "")
    shown.setdefault("bot_id", "B0FORGEBOT")
    shown["id"] = view_id
    if values is not None:
        shown["state"] = {"values": {k: dict(v) for k, v in values.items()}}
    else:
        shown.setdefault("state", {"values": {}})
    return shown


def view_submission(
    who: SlackIdentity,
    view: Mapping[str, Any],
    values: Mapping[str, Mapping[str, Any]],
    *,
    response_urls: Sequence[Mapping[str, Any]] = (),
) -> bytes:
    """`values` is Slack's `state.values`: block_id -> action_id -> element value (see the
    `*_value` helpers, or `state_values` to build it from a view and plain answers)."""
    payload = {
        "type": "view_submission",
        "team": _team(who),
        "user": _user(who),
        "api_app_id": who.api_app_id,
        "token": LEGACY_TOKEN,
        "trigger_id": trigger_id(),
        "view": _as_slack_view(who, view, values),
        "response_urls": [dict(r) for r in response_urls],
        "enterprise": _enterprise(who),
        "is_enterprise_install": False,
    }
    return _interaction(payload)


def view_closed(who: SlackIdentity, view: Mapping[str, Any], *, is_cleared: bool = False) -> bytes:
    payload = {
        "type": "view_closed",
        "team": _team(who),
        "user": _user(who),
        "api_app_id": who.api_app_id,
        "token": LEGACY_TOKEN,
        "view": _as_slack_view(who, view),
        "is_cleared": is_cleared,
        "enterprise": _enterprise(who),
        "is_enterprise_install": False,
    }
    return _interaction(payload)


def _option_shape(option: Mapping[str, Any]) -> dict[str, Any]:
    return {"text": dict(option.get("text") or {}), "value": str(option.get("value", ""))}


def text_value(value: str | None) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def number_value(value: str | int | float | None) -> dict[str, Any]:
    # Slack sends the number as the string the user typed.
    return {"type": "number_input", "value": None if value is None else str(value)}


def select_value(option: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"type": "static_select", "selected_option": _option_shape(option) if option else None}


def radio_value(option: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"type": "radio_buttons", "selected_option": _option_shape(option) if option else None}


def checkboxes_value(options: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"type": "checkboxes", "selected_options": [_option_shape(o) for o in options]}


def date_value(iso_date: str | None) -> dict[str, Any]:
    return {"type": "datepicker", "selected_date": iso_date}


def user_value(user_id: str | None) -> dict[str, Any]:
    return {"type": "users_select", "selected_user": user_id}


def _options_of(element: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def _element_value(element: Mapping[str, Any], answer: Any) -> dict[str, Any]:
    kind = element.get("type")
    if kind in ("static_select", "radio_buttons", "checkboxes"):
        options = _options_of(element)
        wanted = [answer] if kind != "checkboxes" else list(answer or [])
        chosen = [o for o in options if o.get("value") in wanted]
        if len(chosen) != len([w for w in wanted if w is not None]):
            raise ValueError(f"{answer!r} is not an option of {element.get('action_id')!r}")
        if kind == "checkboxes":
            return checkboxes_value(chosen)
        option = chosen[0] if chosen else None
        return select_value(option) if kind == "static_select" else radio_value(option)
    if kind == "number_input":
        return number_value(answer)
    if kind == "datepicker":
        return date_value(answer)
    if kind == "users_select":
        return user_value(answer)
    if kind == "plain_text_input":
        return text_value(answer)
    raise ValueError(f"no value shape for element type {kind!r}")


def state_values(view: Mapping[str, Any], answers: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Slack's `state.values` for `view`, from plain answers by input block_id.

    Selects and radios take the option's value; checkboxes a list of values; the rest the
    typed text. Unanswered inputs are sent empty, as Slack does.
    """
    values: dict[str, dict[str, Any]] = {}
    known: set[str] = set()
    for block in view.get("blocks") or []:
        if block.get("type") != "input" or not isinstance(block.get("element"), Mapping):
            continue
        block_id = str(block.get("block_id", ""))
        element = block["element"]
        known.add(block_id)
        answer = answers.get(block_id)
        values[block_id] = {str(element.get("action_id", "")): _element_value(element, answer)}
    unknown = set(answers) - known
    if unknown:
        raise ValueError(f"the view has no input blocks {sorted(unknown)}")
    return values


# --- Events API ------------------------------------------------------------------------------


def event_callback(
    who: SlackIdentity,
    event: Mapping[str, Any],
    *,
    event_id: str | None = None,
    event_time: int | None = None,
    bot_user_id: str = "U0FORGEBOT",
) -> bytes:
    moment = int(_now(None) if event_time is None else event_time)
    envelope = {
        "token": LEGACY_TOKEN,
        "team_id": who.team_id,
        "enterprise_id": who.enterprise_id,
        "context_team_id": who.team_id,
        "context_enterprise_id": who.enterprise_id,
        "api_app_id": who.api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_counter):010d}",
        "event_time": moment,
        "authorizations": [
            {
                "enterprise_id": who.enterprise_id,
                "team_id": who.team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{secrets.token_hex(12)}",
    }
    return json.dumps(envelope).encode()


def app_home_opened(
    who: SlackIdentity,
    event_id: str | None = None,
    *,
    tab: Literal["home", "messages"] = "home",
    now: float | None = None,
) -> bytes:
    moment = _now(now)
    event = {
        "type": "app_home_opened",
        "user": who.user_id,
        "channel": "D" + who.user_id[1:],
        "tab": tab,
        "event_ts": f"{moment:.6f}",
    }
    return event_callback(who, event, event_id=event_id, event_time=int(moment))


def url_verification(challenge: str) -> bytes:
    return json.dumps(
        {"token": LEGACY_TOKEN, "challenge": challenge, "type": "url_verification"}
    ).encode()


# --- the signed client -----------------------------------------------------------------------


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
    """POSTs bodies to `<base_url><path>` signed with `secret`, as Slack does.

    The signing time is `wall_clock() + clock_offset`, or `fixed_timestamp` when set (to
    test stale and future requests); `send` can also forge or drop the headers.
    """

    base_url: str
    secret: str
    clock_offset: float = 0.0
    path: str = "/slack/events"
    fixed_timestamp: str | None = None
    wall_clock: Callable[[], float] = time.time
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    async def __aenter__(self) -> SignedSlackClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def timestamp_now(self) -> str:
        if self.fixed_timestamp is not None:
            return self.fixed_timestamp
        return str(int(self.wall_clock() + self.clock_offset))

    async def send(
        self,
        body: bytes,
        *,
        content_type: str | None = None,
        forge: bool = False,
        drop_headers: bool | Literal["timestamp", "signature"] = False,
        timestamp: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        path: str | None = None,
    ) -> SignedResponse:
        """Send `body`; `retry_num` marks it as Slack's retry of an event delivery."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        stamp = timestamp if timestamp is not None else self.timestamp_now()
        secret = "forged-" + secrets.token_hex(8) if forge else self.secret
        headers = {
            "Content-Type": content_type
            or (
                "application/json"
                if body.lstrip().startswith(b"{")
                else "application/x-www-form-urlencoded"
            ),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if drop_headers is not True:
            if drop_headers != "timestamp":
                headers[TIMESTAMP_HEADER] = stamp
            if drop_headers != "signature":
                headers[SIGNATURE_HEADER] = compute_signature(secret, stamp, body)
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        headers.update(extra_headers or {})
        started = time.perf_counter()
        async with self._session.post(
            f"{self.base_url}{path or self.path}", data=body, headers=headers
        ) as response:
            text = await response.text()
            return SignedResponse(
                response.status, text, dict(response.headers), time.perf_counter() - started
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
