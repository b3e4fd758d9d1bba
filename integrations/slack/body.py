"""The shape check of a signed Slack request body, before bolt parses it.

A body with a valid signature can still be malformed (a bug in a proxy, a replayed and
truncated request, a hostile workspace admin): invalid UTF-8, a `payload` that is not JSON
or not an object, a block action without actions, a view without a type, an event that is a
string. bolt answers those with a 500 from deep inside its parsers; `malformed` names what is
wrong instead, so the server answers 400 with one log line.

Only the structure every listener relies on is checked; what a listener reads beyond that it
reads defensively. Nothing returned here quotes the body (it may carry tokens or URLs).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

_INTERACTIONS_WITH_ACTIONS = ("block_actions", "interactive_message")
_INTERACTIONS_WITH_VIEWS = ("view_submission", "view_closed")


def malformed(body: bytes, content_type: str) -> str | None:
    """Why this body cannot be a Slack request, or None when its shape is sound."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if "json" in content_type:
        return _json_body(text)
    try:
        form = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError:
        return "form body is not URL-encoded"
    if "payload" in form:
        return _payload(form["payload"][0])
    if "command" in form:
        return None if form["command"][0].startswith("/") else "command is not a slash command"
    if "ssl_check" in form:
        return None
    return "form body has neither a command nor a payload"


def _object(text: str, what: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = json.loads(text)
    except ValueError:
        return None, f"{what} is not JSON"
    if not isinstance(value, dict):
        return None, f"{what} is a JSON {type(value).__name__}, not an object"
    return value, None


def _json_body(text: str) -> str | None:
    body, problem = _object(text, "body")
    if body is None:
        return problem
    kind = body.get("type")
    if not isinstance(kind, str):
        return "body has no type"
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return "event is not an object with a type"
    if kind == "url_verification" and not isinstance(body.get("challenge"), str):
        return "url_verification without a challenge"
    return None


def _payload(text: str) -> str | None:
    payload, problem = _object(text, "payload")
    if payload is None:
        return problem
    kind = payload.get("type")
    if not isinstance(kind, str):
        return "payload has no type"
    for field in ("user", "team", "channel", "container", "message"):
        if field in payload and payload[field] is not None and not isinstance(payload[field], dict):
            return f"payload {field} is not an object"
    if kind in _INTERACTIONS_WITH_ACTIONS:
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions:
            return "block action without actions"
        if not all(
            isinstance(a, dict) and isinstance(a.get("action_id", ""), str) for a in actions
        ):
            return "an action is not an object"
    if kind in _INTERACTIONS_WITH_VIEWS:
        view = payload.get("view")
        if not isinstance(view, dict) or not isinstance(view.get("type"), str):
            return "view is not an object with a type"
        state = view.get("state")
        if state is not None and not (
            isinstance(state, dict) and isinstance(state.get("values", {}), dict)
        ):
            return "view state is malformed"
    if kind == "block_suggestion" and not isinstance(payload.get("action_id"), str):
        return "options request without an action_id"
    return None
