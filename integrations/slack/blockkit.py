"""Block Kit limits, enforced by the bot's builders and checked on everything it sends.

Limits are Slack's documented ones; a builder that would exceed one truncates or paginates
rather than letting Slack reject the whole message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
SECTION_TEXT = 3000
SECTION_FIELDS = 10
FIELD_TEXT = 2000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
BLOCK_ID = 255
OPTION_TEXT = 75
OPTION_VALUE = 150
SELECT_OPTIONS = 100
INPUT_LABEL = 2000
VIEW_TITLE = 24
VIEW_BUTTON = 24
PRIVATE_METADATA = 3000
CALLBACK_ID = 255
MESSAGE_TEXT = 40000


def escape(text: str) -> str:
    """User text shown back in mrkdwn: it can never ping @channel or forge a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def paginate_blocks(
    blocks: list[dict[str, Any]], per_page: int = MESSAGE_BLOCKS
) -> list[list[dict[str, Any]]]:
    return [blocks[i : i + per_page] for i in range(0, len(blocks), per_page)] or [[]]


@dataclass(frozen=True)
class Violation:
    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return ""


def _check_len(out: list[Violation], where: str, value: str, limit: int, what: str) -> None:
    if len(value) > limit:
        out.append(Violation(where, f"{what} is {len(value)} characters; the limit is {limit}"))


def _check_element(
    out: list[Violation], where: str, element: dict[str, Any], action_ids: set[str]
) -> None:
    kind = element.get("type")
    action_id = element.get("action_id")
    if action_id is not None:
        _check_len(out, where, str(action_id), ACTION_ID, "action_id")
        if action_id in action_ids:
            out.append(Violation(where, f"action_id {action_id!r} is not unique"))
        action_ids.add(str(action_id))
    if kind == "button":
        _check_len(out, where, _text_of(element.get("text")), BUTTON_TEXT, "button text")
        _check_len(out, where, str(element.get("value", "")), BUTTON_VALUE, "button value")
    if kind in ("static_select", "multi_static_select", "radio_buttons", "checkboxes", "overflow"):
        options = list(element.get("options", []))
        for group in element.get("option_groups", []):
            options.extend(group.get("options", []))
        if len(options) > SELECT_OPTIONS:
            out.append(Violation(where, f"{len(options)} options; the limit is {SELECT_OPTIONS}"))
        for option in options:
            _check_len(out, where, _text_of(option.get("text")), OPTION_TEXT, "option text")
            _check_len(out, where, str(option.get("value", "")), OPTION_VALUE, "option value")


def _check_blocks(blocks: Iterable[dict[str, Any]], limit: int, where: str) -> list[Violation]:
    out: list[Violation] = []
    blocks = list(blocks)
    if len(blocks) > limit:
        out.append(Violation(where, f"{len(blocks)} blocks; the limit is {limit}"))
    block_ids: set[str] = set()
    for index, block in enumerate(blocks):
        here = f"{where}.blocks[{index}]"
        action_ids: set[str] = set()
        block_id = block.get("block_id")
        if block_id is not None:
            _check_len(out, here, str(block_id), BLOCK_ID, "block_id")
            if block_id in block_ids:
                out.append(Violation(here, f"block_id {block_id!r} is not unique"))
            block_ids.add(str(block_id))
        kind = block.get("type")
        if kind == "section":
            _check_len(out, here, _text_of(block.get("text")), SECTION_TEXT, "section text")
            fields = block.get("fields", [])
            if len(fields) > SECTION_FIELDS:
                out.append(Violation(here, f"{len(fields)} fields; the limit is {SECTION_FIELDS}"))
            for field in fields:
                _check_len(out, here, _text_of(field), FIELD_TEXT, "field text")
            if isinstance(block.get("accessory"), dict):
                _check_element(out, here, block["accessory"], action_ids)
        elif kind == "header":
            _check_len(out, here, _text_of(block.get("text")), HEADER_TEXT, "header text")
        elif kind == "context":
            if len(block.get("elements", [])) > CONTEXT_ELEMENTS:
                out.append(Violation(here, f"context has more than {CONTEXT_ELEMENTS} elements"))
        elif kind == "actions":
            elements = block.get("elements", [])
            if len(elements) > ACTIONS_ELEMENTS:
                out.append(
                    Violation(here, f"{len(elements)} elements; the limit is {ACTIONS_ELEMENTS}")
                )
            for element in elements:
                _check_element(out, here, element, action_ids)
        elif kind == "input":
            _check_len(out, here, _text_of(block.get("label")), INPUT_LABEL, "input label")
            if isinstance(block.get("element"), dict):
                _check_element(out, here, block["element"], action_ids)
    return out


def check_message(blocks: list[dict[str, Any]] | None, text: str | None = None) -> list[Violation]:
    out = _check_blocks(blocks or [], MESSAGE_BLOCKS, "message")
    if text is not None:
        _check_len(out, "message", text, MESSAGE_TEXT, "text")
    return out


def check_view(view: dict[str, Any]) -> list[Violation]:
    out = _check_blocks(view.get("blocks", []), VIEW_BLOCKS, "view")
    if view.get("type") == "modal":
        _check_len(out, "view", _text_of(view.get("title")), VIEW_TITLE, "title")
        for key in ("submit", "close"):
            _check_len(out, "view", _text_of(view.get(key)), VIEW_BUTTON, key)
    _check_len(
        out, "view", str(view.get("private_metadata", "")), PRIVATE_METADATA, "private_metadata"
    )
    _check_len(out, "view", str(view.get("callback_id", "")), CALLBACK_ID, "callback_id")
    return out
