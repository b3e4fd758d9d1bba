"""Block builders that cannot break Slack's limits: text is truncated, long text is split.

Identifiers and values are not truncated (a cut `action_id` or option `value` would silently
mean something else), so those raise `ValueError` instead: that is a bug in the view.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from core import block_limits as limits
from core.block_limits import split_text, truncate

Block = dict[str, Any]


def _identifier(value: str, limit: int, what: str) -> str:
    if not value or len(value) > limit:
        raise ValueError(f"{what} must be 1 to {limit} characters, got {len(value)}")
    return value


def plain_text(text: str, limit: int = limits.TEXT_OBJECT) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = limits.TEXT_OBJECT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": truncate(text, limit) or " "}


def section(
    text: str | None = None,
    *,
    fields: Sequence[str] = (),
    accessory: dict[str, Any] | None = None,
    block_id: str | None = None,
) -> Block:
    """A section; fields beyond Slack's ten are dropped, so put long lists in `sections`."""
    block: Block = {"type": "section"}
    if text is not None:
        block["text"] = mrkdwn(text, limits.SECTION_TEXT)
    if fields:
        block["fields"] = [mrkdwn(f, limits.FIELD_TEXT) for f in fields[: limits.SECTION_FIELDS]]
    if text is None and not fields:
        block["text"] = mrkdwn(" ")
    if accessory is not None:
        block["accessory"] = accessory
    if block_id is not None:
        block["block_id"] = _identifier(block_id, limits.BLOCK_ID, "block_id")
    return block


def sections(text: str) -> list[Block]:
    """Long mrkdwn as as many sections as it needs, split at line breaks."""
    return [section(chunk) for chunk in split_text(text, limits.SECTION_TEXT)]


def header(text: str) -> Block:
    return {"type": "header", "text": plain_text(text, limits.HEADER_TEXT)}


def context(*texts: str) -> Block:
    """A context line; Slack allows ten elements, so extra texts join the last one."""
    items = list(texts[: limits.CONTEXT_ELEMENTS - 1])
    rest = texts[limits.CONTEXT_ELEMENTS - 1 :]
    if rest:
        items.append("  ".join(rest))
    return {"type": "context", "elements": [mrkdwn(t) for t in items or [" "]]}


def divider() -> Block:
    return {"type": "divider"}


def confirm_dialog(
    title: str, text: str, confirm: str, deny: str = "Cancel", *, danger: bool = False
) -> dict[str, Any]:
    dialog: dict[str, Any] = {
        "title": plain_text(title, limits.CONFIRM_TITLE),
        "text": mrkdwn(text, limits.CONFIRM_TEXT),
        "confirm": plain_text(confirm, limits.CONFIRM_BUTTON),
        "deny": plain_text(deny, limits.CONFIRM_BUTTON),
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def button(
    text: str,
    action_id: str,
    *,
    value: str | None = None,
    style: Literal["primary", "danger"] | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": plain_text(text, limits.BUTTON_TEXT),
        "action_id": _identifier(action_id, limits.ACTION_ID, "action_id"),
    }
    if value is not None:
        if len(value) > limits.BUTTON_VALUE:
            raise ValueError(f"a button value is at most {limits.BUTTON_VALUE} characters")
        element["value"] = value
    if style is not None:
        element["style"] = style
    if confirm is not None:
        element["confirm"] = confirm
    return element


def actions(*elements: dict[str, Any], block_id: str | None = None) -> Block:
    if not 1 <= len(elements) <= limits.ACTIONS_ELEMENTS:
        raise ValueError(f"an actions block holds 1 to {limits.ACTIONS_ELEMENTS} elements")
    action_ids = [e.get("action_id") for e in elements if e.get("action_id") is not None]
    if len(action_ids) != len(set(action_ids)):
        raise ValueError("action_ids must be unique within a block")
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id is not None:
        block["block_id"] = _identifier(block_id, limits.BLOCK_ID, "block_id")
    return block


def option(text: str, value: str, description: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "text": plain_text(text, limits.OPTION_TEXT),
        "value": _identifier(value, limits.OPTION_VALUE, "option value"),
    }
    if description:
        result["description"] = plain_text(description, limits.OPTION_DESCRIPTION)
    return result


def modal(
    title: str,
    blocks: Sequence[Block],
    *,
    callback_id: str,
    submit: str | None = None,
    close: str | None = "Cancel",
    private_metadata: str = "",
) -> dict[str, Any]:
    if len(blocks) > limits.VIEW_BLOCKS:
        raise ValueError(f"a modal holds at most {limits.VIEW_BLOCKS} blocks")
    if len(private_metadata) > limits.PRIVATE_METADATA:
        raise ValueError(f"private_metadata is at most {limits.PRIVATE_METADATA} characters")
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": _identifier(callback_id, limits.CALLBACK_ID, "callback_id"),
        "title": plain_text(title, limits.VIEW_TITLE),
        "blocks": list(blocks),
    }
    if submit is not None:
        view["submit"] = plain_text(submit, limits.VIEW_BUTTON)
    if close is not None:
        view["close"] = plain_text(close, limits.VIEW_BUTTON)
    if private_metadata:
        view["private_metadata"] = private_metadata
    return view


def state_value(values: dict[str, Any], block_id: str) -> str:
    """What a modal's input block holds, from `view.state.values`: the chosen option's value
    of a select, or the text of a text input; "" when empty or absent."""
    element: dict[str, Any] = next(iter((values.get(block_id) or {}).values()), {}) or {}
    option = element.get("selected_option") or {}
    return str(option.get("value") or element.get("value") or "")
