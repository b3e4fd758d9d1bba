"""Block Kit rendered as terminal text, for `forgebot shell` and `forgebot demo`.

Buttons are numbered so a person can press them by typing the number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_USER = re.compile(r"<@([A-Z0-9]+)>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")


def plain(text: str) -> str:
    text = _USER.sub(r"@\1", text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = _LINK.sub(r"\2 (\1)", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass
class Button:
    number: int
    text: str
    action: dict[str, Any]
    block_id: str
    source: dict[str, Any]
    """The message (with channel and ts) or the view the button sits in."""


@dataclass
class Buttons:
    next_number: int = 1
    by_number: dict[int, Button] = field(default_factory=dict)

    def add(self, element: dict[str, Any], block_id: str, source: dict[str, Any]) -> Button:
        button = Button(self.next_number, _text(element.get("text")), element, block_id, source)
        self.by_number[button.number] = button
        self.next_number += 1
        return button


def _text(obj: Any) -> str:
    if isinstance(obj, dict):
        return plain(str(obj.get("text", "")))
    return plain(str(obj or ""))


def render_blocks(
    blocks: list[dict[str, Any]], buttons: Buttons, source: dict[str, Any]
) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        block_id = str(block.get("block_id", ""))
        if kind == "header":
            title = _text(block.get("text"))
            lines += [title, "=" * min(len(title), 60)]
        elif kind == "section":
            if block.get("text"):
                lines += _text(block.get("text")).splitlines()
            for field_ in block.get("fields", []):
                lines.append("  " + _text(field_).replace("\n", " "))
            accessory = block.get("accessory")
            if isinstance(accessory, dict) and accessory.get("type") == "button":
                button = buttons.add(accessory, block_id, source)
                lines.append(f"  [{button.number}] {button.text}")
        elif kind == "context":
            lines.append("  " + "  ".join(_text(e) for e in block.get("elements", [])))
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "actions":
            labels = []
            for element in block.get("elements", []):
                if element.get("type") == "button":
                    button = buttons.add(element, block_id, source)
                    labels.append(f"[{button.number}] {button.text}")
            if labels:
                lines.append("  " + "   ".join(labels))
        elif kind == "input":
            lines.append(f"  {_text(block.get('label'))}: (form field)")
        elif kind == "image":
            lines.append(f"  [image: {block.get('alt_text', '')}]")
    return lines


def render_message(
    text: str, blocks: list[dict[str, Any]] | None, buttons: Buttons, source: dict[str, Any]
) -> str:
    if blocks:
        return "\n".join(render_blocks(blocks, buttons, source))
    return plain(text)
