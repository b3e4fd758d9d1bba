"""Block Kit limits: a pure validator for what the bot sends, and text helpers that keep within.

Slack rejects a whole message or view (`invalid_blocks`, `invalid_arguments`) when one field is
a character too long, so the bot's views truncate, escape and paginate with the helpers here,
and the sandbox checks every payload with `check_message` / `check_view`.

The limits are Slack's documented ones (Block Kit reference: blocks, block elements,
composition objects, modal and Home tab views; chat.postMessage for message text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

# Surfaces
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
MESSAGE_TEXT = 40_000
"""Slack truncates `text` beyond this."""
MESSAGE_TEXT_ADVISED = 4_000
"""Slack advises keeping `text` under this; longer is allowed but unreadable (a warning)."""
MARKDOWN_BLOCKS_TEXT = 12_000
"""Cumulative limit of all `markdown` blocks in one payload."""
VIEW_TITLE = 24
VIEW_BUTTON = 24
PRIVATE_METADATA = 3000
CALLBACK_ID = 255

# Blocks
BLOCK_ID = 255
SECTION_TEXT = 3000
SECTION_FIELDS = 10
FIELD_TEXT = 2000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
INPUT_LABEL = 2000
INPUT_HINT = 2000
IMAGE_ALT_TEXT = 2000
IMAGE_URL = 3000
IMAGE_TITLE = 2000
TEXT_OBJECT = 3000

# Elements and composition objects
ACTION_ID = 255
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTON_URL = 3000
PLACEHOLDER_TEXT = 150
OPTION_TEXT = 75
OPTION_VALUE = 150
OPTION_DESCRIPTION = 75
OPTION_GROUP_LABEL = 75
SELECT_OPTIONS = 100
SELECT_OPTION_GROUPS = 100
CHOICE_OPTIONS = 10
"""radio_buttons and checkboxes."""
OVERFLOW_OPTIONS = (2, 5)
TEXT_INPUT_LENGTH = 3000
"""Bound for a plain_text_input's min_length and max_length."""
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Violation:
    where: str
    problem: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{prefix}{self.where}: {self.problem}"


# --- text helpers the views use ------------------------------------------------------------

ELLIPSIS = "…"
_PARTIAL_ENTITY = re.compile(r"&(?:a|am|amp|l|lt|g|gt)?$")
_PARTIAL_SPECIAL = re.compile(r"<(?:[@#!]|https?:|mailto:)[^>]*$")


def escape(text: str) -> str:
    """User text shown back in mrkdwn: it can never ping @channel, mention, or forge a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quoted(text: str) -> str:
    """User input echoed in a message (a parser's error): escaped and in quotes. Every
    parser quotes what it could not read through this, so nothing typed can ping or link."""
    return f"“{escape(text)}”"


def truncate(text: str, limit: int, ellipsis: str = ELLIPSIS) -> str:
    """`text` cut to at most `limit` characters, ending in `ellipsis` when it was cut.

    Never leaves half an escape (`&am`) or half a mention or link (`<@U12`) at the cut.
    """
    if limit < 0:
        raise ValueError("limit must not be negative")
    if len(text) <= limit:
        return text
    if limit <= len(ellipsis):
        return ellipsis[:limit]
    kept = text[: limit - len(ellipsis)]
    kept = _PARTIAL_SPECIAL.sub("", _PARTIAL_ENTITY.sub("", kept))
    return kept + ellipsis


def split_text(text: str, limit: int = SECTION_TEXT) -> list[str]:
    """Split long text into chunks of at most `limit` characters, at line breaks when possible."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = line if not current else current + "\n" + line
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            chunks.append(current)
        while len(line) > limit:
            chunks.append(line[:limit])
            line = line[limit:]
        current = line
    if current or not chunks:
        chunks.append(current)
    return chunks


def paginate_blocks(
    blocks: Sequence[dict[str, Any]], per_page: int = MESSAGE_BLOCKS
) -> list[list[dict[str, Any]]]:
    """Split a long list of blocks into pages that each fit one message (always one page)."""
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    return [list(blocks[i : i + per_page]) for i in range(0, len(blocks), per_page)] or [[]]


# --- the validator ---------------------------------------------------------------------------


def check_message(
    blocks: Sequence[Mapping[str, Any]] | None, text: str | None = None
) -> list[Violation]:
    """Violations of Slack's limits in a message (chat.postMessage/update, response_url)."""
    checker = _Checker()
    checker.blocks("message", blocks or [], MESSAGE_BLOCKS)
    if text is not None:
        checker.length("message.text", text, MESSAGE_TEXT, "text")
        if MESSAGE_TEXT_ADVISED < len(text) <= MESSAGE_TEXT:
            checker.warn(
                "message.text",
                f"text is {len(text)} characters; Slack advises at most {MESSAGE_TEXT_ADVISED}",
            )
    return checker.found


def check_view(view: Mapping[str, Any]) -> list[Violation]:
    """Violations of Slack's limits in a modal or Home tab view."""
    checker = _Checker()
    kind = view.get("type")
    blocks = view.get("blocks") or []
    if kind not in ("modal", "home"):
        checker.error("view.type", f"type must be 'modal' or 'home', not {kind!r}")
    checker.blocks("view", blocks, VIEW_BLOCKS)
    if kind == "modal":
        checker.text_object("view.title", view.get("title"), VIEW_TITLE, plain=True, required=True)
        for key in ("submit", "close"):
            checker.text_object(f"view.{key}", view.get(key), VIEW_BUTTON, plain=True)
        if view.get("submit") is None and any(_is_input(b) for b in blocks):
            checker.error("view.submit", "a modal with input blocks needs a submit button")
    checker.length(
        "view.private_metadata", str(view.get("private_metadata") or ""), PRIVATE_METADATA
    )
    checker.length("view.callback_id", str(view.get("callback_id") or ""), CALLBACK_ID)
    return checker.found


def _is_input(block: Any) -> bool:
    return isinstance(block, Mapping) and block.get("type") == "input"


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


class _Checker:
    """Walks one payload and collects violations; the paths say where (for humans)."""

    def __init__(self) -> None:
        self.found: list[Violation] = []

    def error(self, where: str, problem: str) -> None:
        self.found.append(Violation(where, problem))

    def warn(self, where: str, problem: str) -> None:
        self.found.append(Violation(where, problem, "warning"))

    def length(self, where: str, value: str, limit: int, what: str | None = None) -> None:
        if len(value) > limit:
            name = what or where.rsplit(".", 1)[-1]
            self.error(where, f"{name} is {len(value)} characters; the limit is {limit}")

    def count(self, where: str, items: Sequence[Any], limit: int, what: str) -> None:
        if len(items) > limit:
            self.error(where, f"{len(items)} {what}; the limit is {limit}")

    def text_object(
        self,
        where: str,
        obj: Any,
        limit: int,
        *,
        plain: bool = False,
        required: bool = False,
    ) -> None:
        if obj is None:
            if required:
                self.error(where, "is required")
            return
        if not isinstance(obj, Mapping):
            self.error(where, "must be a text object")
            return
        kind = obj.get("type")
        if plain and kind != "plain_text":
            self.error(where, f"must be plain_text, not {kind!r}")
        elif kind not in ("plain_text", "mrkdwn"):
            self.error(where, f"text type must be plain_text or mrkdwn, not {kind!r}")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.error(where, "text must be a non-empty string")
            return
        self.length(where, text, limit, "text")

    # --- blocks ------------------------------------------------------------------------------
    def blocks(self, where: str, blocks: Sequence[Any], limit: int) -> None:
        self.count(where + ".blocks", blocks, limit, "blocks")
        block_ids: set[str] = set()
        markdown_total = 0
        for index, block in enumerate(blocks):
            here = f"{where}.blocks[{index}]"
            if not isinstance(block, Mapping):
                self.error(here, "a block must be an object")
                continue
            block_id = block.get("block_id")
            if block_id is not None:
                self.length(here + ".block_id", str(block_id), BLOCK_ID)
                if str(block_id) in block_ids:
                    self.error(here + ".block_id", f"block_id {block_id!r} is not unique")
                block_ids.add(str(block_id))
            if block.get("type") == "markdown":
                markdown_total += len(str(block.get("text", "")))
            self.block(here, block)
        if markdown_total > MARKDOWN_BLOCKS_TEXT:
            self.error(
                where,
                f"markdown blocks hold {markdown_total} characters; the limit is "
                f"{MARKDOWN_BLOCKS_TEXT}",
            )

    def block(self, here: str, block: Mapping[str, Any]) -> None:
        action_ids: set[str] = set()
        kind = block.get("type")
        if kind == "section":
            text, fields = block.get("text"), _as_list(block.get("fields"))
            if text is None and not fields:
                self.error(here, "a section needs text or fields")
            self.text_object(here + ".text", text, SECTION_TEXT)
            self.count(here + ".fields", fields, SECTION_FIELDS, "fields")
            for n, item in enumerate(fields):
                self.text_object(f"{here}.fields[{n}]", item, FIELD_TEXT, required=True)
            if block.get("accessory") is not None:
                self.element(here + ".accessory", block["accessory"], action_ids)
        elif kind == "header":
            self.text_object(
                here + ".text", block.get("text"), HEADER_TEXT, plain=True, required=True
            )
        elif kind == "context":
            elements = _as_list(block.get("elements"))
            self.count(here + ".elements", elements, CONTEXT_ELEMENTS, "elements")
            for n, element in enumerate(elements):
                where = f"{here}.elements[{n}]"
                if isinstance(element, Mapping) and element.get("type") == "image":
                    self.image(where, element)
                else:
                    self.text_object(where, element, TEXT_OBJECT, required=True)
        elif kind == "actions":
            elements = _as_list(block.get("elements"))
            self.count(here + ".elements", elements, ACTIONS_ELEMENTS, "elements")
            for n, element in enumerate(elements):
                self.element(f"{here}.elements[{n}]", element, action_ids)
        elif kind == "input":
            self.text_object(
                here + ".label", block.get("label"), INPUT_LABEL, plain=True, required=True
            )
            self.text_object(here + ".hint", block.get("hint"), INPUT_HINT, plain=True)
            if block.get("element") is None:
                self.error(here + ".element", "an input block needs an element")
            else:
                self.element(here + ".element", block["element"], action_ids)
        elif kind == "image":
            self.image(here, block)
            self.text_object(here + ".title", block.get("title"), IMAGE_TITLE, plain=True)

    def image(self, where: str, image: Mapping[str, Any]) -> None:
        self.length(where + ".alt_text", str(image.get("alt_text", "")), IMAGE_ALT_TEXT)
        self.length(where + ".image_url", str(image.get("image_url", "")), IMAGE_URL)

    # --- elements ----------------------------------------------------------------------------
    def element(self, where: str, element: Any, action_ids: set[str]) -> None:
        if not isinstance(element, Mapping):
            self.error(where, "an element must be an object")
            return
        action_id = element.get("action_id")
        if action_id is not None:
            self.length(where + ".action_id", str(action_id), ACTION_ID)
            if str(action_id) in action_ids:
                self.error(
                    where + ".action_id", f"action_id {action_id!r} is not unique in its block"
                )
            action_ids.add(str(action_id))
        self.text_object(
            where + ".placeholder", element.get("placeholder"), PLACEHOLDER_TEXT, plain=True
        )
        if element.get("confirm") is not None:
            self.confirm(where + ".confirm", element["confirm"])
        kind = element.get("type")
        if kind == "button":
            self.text_object(
                where + ".text", element.get("text"), BUTTON_TEXT, plain=True, required=True
            )
            self.length(where + ".value", str(element.get("value", "")), BUTTON_VALUE)
            self.length(where + ".url", str(element.get("url", "")), BUTTON_URL)
        elif kind in ("static_select", "multi_static_select"):
            self.options(where, element, SELECT_OPTIONS)
        elif kind in ("radio_buttons", "checkboxes"):
            self.options(where, element, CHOICE_OPTIONS)
        elif kind == "overflow":
            options = _as_list(element.get("options"))
            low, high = OVERFLOW_OPTIONS
            if not low <= len(options) <= high:
                self.error(
                    where + ".options",
                    f"{len(options)} options; an overflow menu takes {low} to {high}",
                )
            self.options(where, element, SELECT_OPTIONS)  # the count is checked just above
        elif kind == "plain_text_input":
            for key in ("min_length", "max_length"):
                value = element.get(key)
                if isinstance(value, int) and not 0 <= value <= TEXT_INPUT_LENGTH:
                    self.error(f"{where}.{key}", f"{key} must be between 0 and {TEXT_INPUT_LENGTH}")
        elif kind == "image":
            self.image(where, element)

    def options(self, where: str, element: Mapping[str, Any], limit: int) -> None:
        options = _as_list(element.get("options"))
        groups = _as_list(element.get("option_groups"))
        self.count(where + ".options", options, limit, "options")
        self.count(where + ".option_groups", groups, SELECT_OPTION_GROUPS, "option groups")
        for n, option in enumerate(options):
            self.option(f"{where}.options[{n}]", option)
        for g, group in enumerate(groups):
            here = f"{where}.option_groups[{g}]"
            if not isinstance(group, Mapping):
                self.error(here, "an option group must be an object")
                continue
            self.text_object(
                here + ".label", group.get("label"), OPTION_GROUP_LABEL, plain=True, required=True
            )
            grouped = _as_list(group.get("options"))
            self.count(here + ".options", grouped, SELECT_OPTIONS, "options")
            for n, option in enumerate(grouped):
                self.option(f"{here}.options[{n}]", option)
        initial = [element.get("initial_option"), *_as_list(element.get("initial_options"))]
        for option in (o for o in initial if o is not None):
            self.option(where + ".initial_option", option)

    def option(self, where: str, option: Any) -> None:
        if not isinstance(option, Mapping):
            self.error(where, "an option must be an object")
            return
        self.text_object(where + ".text", option.get("text"), OPTION_TEXT, required=True)
        self.length(where + ".value", str(option.get("value", "")), OPTION_VALUE)
        self.text_object(where + ".description", option.get("description"), OPTION_DESCRIPTION)

    def confirm(self, where: str, dialog: Any) -> None:
        if not isinstance(dialog, Mapping):
            self.error(where, "a confirmation dialog must be an object")
            return
        self.text_object(
            where + ".title", dialog.get("title"), CONFIRM_TITLE, plain=True, required=True
        )
        self.text_object(where + ".text", dialog.get("text"), CONFIRM_TEXT, required=True)
        for key in ("confirm", "deny"):
            self.text_object(
                f"{where}.{key}", dialog.get(key), CONFIRM_BUTTON, plain=True, required=True
            )


def errors_only(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "error"]
