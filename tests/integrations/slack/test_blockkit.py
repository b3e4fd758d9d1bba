"""Block Kit limits: each one on both sides of its boundary, and the helpers that keep within."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.block_limits import (
    Violation,
    check_message,
    check_view,
    errors_only,
    escape,
    paginate_blocks,
    split_text,
    truncate,
)
from integrations.slack import blocks as build

Payload = Callable[[int], list[Violation]]


def _text(n: int, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": kind, "text": "x" * n}


def _section(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def _button(n: int = 1, **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": _text(1), "action_id": f"b{n}", **extra}


def _option(text: int = 1, value: int = 1, n: int = 0, **extra: Any) -> dict[str, Any]:
    return {"text": _text(text), "value": str(n).rjust(value, "v"), **extra}


def _options(count: int) -> list[dict[str, Any]]:
    return [_option(value=4, n=i) for i in range(count)]


def _in_actions(element: dict[str, Any]) -> list[Violation]:
    return check_message([{"type": "actions", "elements": [element]}])


def _input(element: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "input", "label": _text(5), "element": element, **extra}


def _modal(blocks: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "modal", "title": _text(5), "submit": _text(2), "blocks": blocks or [], **extra}


def _confirm(title: int = 5, text: int = 5, confirm: int = 3, deny: int = 3) -> dict[str, Any]:
    return {
        "title": _text(title),
        "text": _text(text, "mrkdwn"),
        "confirm": _text(confirm),
        "deny": _text(deny),
    }


# (limit, payload builder taking the size to test, words the violation must contain)
LIMITS: dict[str, tuple[int, Payload, str]] = {
    "message blocks": (50, lambda n: check_message([{"type": "divider"}] * n), "blocks"),
    "section text": (3000, lambda n: check_message([_section("x" * n)]), "3000"),
    "section fields": (
        10,
        lambda n: check_message([{"type": "section", "fields": [_text(1)] * n}]),
        "fields",
    ),
    "field text": (
        2000,
        lambda n: check_message([{"type": "section", "fields": [_text(n, "mrkdwn")]}]),
        "2000",
    ),
    "header text": (150, lambda n: check_message([{"type": "header", "text": _text(n)}]), "150"),
    "context elements": (
        10,
        lambda n: check_message([{"type": "context", "elements": [_text(1, "mrkdwn")] * n}]),
        "elements",
    ),
    "actions elements": (
        25,
        lambda n: check_message([{"type": "actions", "elements": [_button(i) for i in range(n)]}]),
        "elements",
    ),
    "button text": (75, lambda n: _in_actions(_button(text=_text(n))), "75"),
    "button value": (2000, lambda n: _in_actions(_button(value="v" * n)), "value"),
    "button url": (3000, lambda n: _in_actions(_button(url="u" * n)), "url"),
    "action_id": (255, lambda n: _in_actions(_button(action_id="a" * n)), "action_id"),
    "block_id": (255, lambda n: check_message([_section(block_id="b" * n)]), "block_id"),
    "static_select options": (
        100,
        lambda n: _in_actions({"type": "static_select", "action_id": "s", "options": _options(n)}),
        "options",
    ),
    "option groups": (
        100,
        lambda n: _in_actions(
            {
                "type": "static_select",
                "action_id": "s",
                "option_groups": [{"label": _text(1), "options": [_option()]}] * n,
            }
        ),
        "option groups",
    ),
    "option group label": (
        75,
        lambda n: _in_actions(
            {
                "type": "static_select",
                "action_id": "s",
                "option_groups": [{"label": _text(n), "options": [_option()]}],
            }
        ),
        "75",
    ),
    "option text": (
        75,
        lambda n: _in_actions(
            {"type": "static_select", "action_id": "s", "options": [_option(text=n)]}
        ),
        "75",
    ),
    "option value": (
        150,
        lambda n: _in_actions(
            {"type": "static_select", "action_id": "s", "options": [_option(value=n)]}
        ),
        "value",
    ),
    "option description": (
        75,
        lambda n: _in_actions(
            {"type": "static_select", "action_id": "s", "options": [_option(description=_text(n))]}
        ),
        "description",
    ),
    "radio options": (
        10,
        lambda n: _in_actions({"type": "radio_buttons", "action_id": "r", "options": _options(n)}),
        "options",
    ),
    "checkbox options": (
        10,
        lambda n: _in_actions({"type": "checkboxes", "action_id": "c", "options": _options(n)}),
        "options",
    ),
    "overflow options": (
        5,
        lambda n: _in_actions({"type": "overflow", "action_id": "o", "options": _options(n)}),
        "overflow",
    ),
    "placeholder": (
        150,
        lambda n: _in_actions(
            {
                "type": "static_select",
                "action_id": "s",
                "placeholder": _text(n),
                "options": _options(1),
            }
        ),
        "150",
    ),
    "input label": (
        2000,
        lambda n: check_view(
            _modal([_input({"type": "plain_text_input", "action_id": "v"}, label=_text(n))])
        ),
        "2000",
    ),
    "input hint": (
        2000,
        lambda n: check_view(
            _modal([_input({"type": "plain_text_input", "action_id": "v"}, hint=_text(n))])
        ),
        "hint",
    ),
    "text input max_length": (
        3000,
        lambda n: check_view(
            _modal([_input({"type": "plain_text_input", "action_id": "v", "max_length": n})])
        ),
        "max_length",
    ),
    "image alt_text": (
        2000,
        lambda n: check_message([{"type": "image", "image_url": "http://i", "alt_text": "a" * n}]),
        "alt_text",
    ),
    "image url": (
        3000,
        lambda n: check_message([{"type": "image", "image_url": "u" * n, "alt_text": "a"}]),
        "image_url",
    ),
    "image title": (
        2000,
        lambda n: check_message(
            [{"type": "image", "image_url": "u", "alt_text": "a", "title": _text(n)}]
        ),
        "2000",
    ),
    "confirm title": (100, lambda n: _in_actions(_button(confirm=_confirm(title=n))), "100"),
    "confirm text": (300, lambda n: _in_actions(_button(confirm=_confirm(text=n))), "300"),
    "confirm button": (30, lambda n: _in_actions(_button(confirm=_confirm(confirm=n))), "30"),
    "deny button": (30, lambda n: _in_actions(_button(confirm=_confirm(deny=n))), "30"),
    "markdown blocks": (
        12000,
        lambda n: check_message(
            [{"type": "markdown", "text": "m" * (n - 1)}, {"type": "markdown", "text": "m"}]
        ),
        "12000",
    ),
    "message text": (40000, lambda n: errors_only(check_message(None, "t" * n)), "40000"),
    "modal blocks": (100, lambda n: check_view(_modal([{"type": "divider"}] * n)), "blocks"),
    "home blocks": (
        100,
        lambda n: check_view({"type": "home", "blocks": [{"type": "divider"}] * n}),
        "blocks",
    ),
    "modal title": (24, lambda n: check_view(_modal(title=_text(n))), "24"),
    "modal submit": (24, lambda n: check_view(_modal(submit=_text(n))), "24"),
    "modal close": (24, lambda n: check_view(_modal(close=_text(n))), "24"),
    "private_metadata": (
        3000,
        lambda n: check_view(_modal(private_metadata="p" * n)),
        "private_metadata",
    ),
    "callback_id": (255, lambda n: check_view(_modal(callback_id="c" * n)), "callback_id"),
}


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_each_limit_on_both_sides(name: str) -> None:
    limit, payload, words = LIMITS[name]
    assert payload(limit) == [], f"{name}: exactly at the limit is allowed"
    over = payload(limit + 1)
    assert len(over) == 1 and over[0].severity == "error", over
    assert words in str(over[0]), over


def test_overflow_menus_need_two_options() -> None:
    assert _in_actions({"type": "overflow", "action_id": "o", "options": _options(1)})
    assert not _in_actions({"type": "overflow", "action_id": "o", "options": _options(2)})


def test_long_message_text_is_a_warning_not_an_error() -> None:
    assert check_message(None, "t" * 4000) == []
    [warning] = check_message(None, "t" * 4001)
    assert warning.severity == "warning" and str(warning).startswith("warning: message.text")


def test_action_ids_are_unique_within_a_block_and_block_ids_within_a_message() -> None:
    twice = [{"type": "actions", "elements": [_button(1), _button(1)]}]
    assert "not unique" in str(check_message(twice)[0])
    separate = [
        {"type": "actions", "elements": [_button(1)]},
        {"type": "actions", "elements": [_button(1)]},
    ]
    assert check_message(separate) == []
    same_block_id = [_section(block_id="row"), _section(block_id="row")]
    [violation] = check_message(same_block_id)
    assert violation.where == "message.blocks[1].block_id" and "not unique" in violation.problem


@pytest.mark.parametrize(
    ("blocks", "problem"),
    [
        ([{"type": "section"}], "needs text or fields"),
        ([_section("")], "non-empty"),
        ([{"type": "header", "text": _text(3, "mrkdwn")}], "must be plain_text"),
        ([{"type": "actions", "elements": [{"type": "button", "action_id": "a"}]}], "is required"),
        ([{"type": "section", "text": {"type": "markdown", "text": "x"}}], "plain_text or mrkdwn"),
        (["not a block"], "must be an object"),
    ],
)
def test_malformed_blocks_are_reported(blocks: list[Any], problem: str) -> None:
    assert problem in str(check_message(blocks))


def test_modal_rules() -> None:
    with_input = [_input({"type": "plain_text_input", "action_id": "v"})]
    assert check_view(_modal(with_input)) == []
    no_submit = {k: v for k, v in _modal(with_input).items() if k != "submit"}
    assert "needs a submit button" in str(check_view(no_submit))
    assert "is required" in str(check_view({"type": "modal", "blocks": []}))
    assert "type must be" in str(check_view({"type": "dialog", "blocks": []}))


# --- helpers ---------------------------------------------------------------------------------


def test_escape_makes_mentions_and_links_inert() -> None:
    assert escape("<!channel> & <@U1> <https://evil|click>") == (
        "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;https://evil|click&gt;"
    )
    assert escape("plain text") == "plain text"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abcdef", 6, "abcdef"),
        ("abcdef", 4, "abc…"),
        ("abcdef", 1, "…"),
        ("abcdef", 0, ""),
        ("fish &amp; chips", 8, "fish …"),  # never half an escape
        ("fish &amp; chips", 11, "fish &amp;…"),
        ("ping <@U0DEVELOPER> now", 10, "ping …"),  # never half a mention
        ("see <https://example.com|docs>", 12, "see …"),
        ("a < b and more", 6, "a < b…"),  # a plain "<" is not Slack syntax
    ],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected


@given(st.text(), st.integers(min_value=0, max_value=200))
def test_truncate_never_exceeds_its_limit(text: str, limit: int) -> None:
    cut = truncate(text, limit)
    assert len(cut) <= limit
    assert cut == text or cut.endswith("…") or limit == 0


@given(st.text())
def test_escaped_text_has_no_angle_brackets(text: str) -> None:
    assert "<" not in escape(text) and ">" not in escape(text)


def test_split_text_prefers_line_breaks() -> None:
    lines = [f"line {n:02d}" for n in range(10)]  # 7 characters each
    chunks = split_text("\n".join(lines), limit=20)
    assert chunks == [
        "line 00\nline 01",
        "line 02\nline 03",
        "line 04\nline 05",
        "line 06\nline 07",
        "line 08\nline 09",
    ]
    assert split_text("x" * 45, limit=20) == ["x" * 20, "x" * 20, "x" * 5]
    assert split_text("") == [""]


@given(st.text(alphabet="ab\n", max_size=300), st.integers(min_value=1, max_value=40))
def test_split_text_keeps_everything_within_the_limit(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(len(c) <= limit for c in chunks)
    assert "".join(chunks).replace("\n", "") == text.replace("\n", "")


def test_paginate_blocks() -> None:
    rows = [_section(str(n)) for n in range(120)]
    assert [len(page) for page in paginate_blocks(rows)] == [50, 50, 20]
    assert [page[0] for page in paginate_blocks(rows, per_page=100)] == [rows[0], rows[100]]
    assert paginate_blocks([]) == [[]]
    with pytest.raises(ValueError):
        paginate_blocks(rows, per_page=0)


# --- builders --------------------------------------------------------------------------------


def test_builders_truncate_text_and_stay_within_limits() -> None:
    message = [
        build.header("h" * 500),
        build.section("s" * 5000, fields=["f" * 3000] * 12),
        build.context(*[f"c{n}" for n in range(12)]),
        *build.sections("\n".join(["line " * 100] * 40)),
        build.actions(build.button("b" * 100, "approve", value="42", style="primary")),
        build.divider(),
    ]
    assert check_message(message) == []
    assert len(message[1]["fields"]) == 10
    assert (
        len(message[2]["elements"]) == 10 and message[2]["elements"][-1]["text"] == "c9  c10  c11"
    )
    view = build.modal(
        "A very long modal title indeed", message, callback_id="env.request", submit="Request"
    )
    assert check_view(view) == [] and view["title"]["text"].endswith("…")


@pytest.mark.parametrize(
    "make",
    [
        lambda: build.button("ok", "a" * 256),
        lambda: build.button("ok", "a", value="v" * 2001),
        lambda: build.option("text", "v" * 151),
        lambda: build.section("x", block_id=""),
        lambda: build.actions(*[build.button("b", f"a{n}") for n in range(26)]),
        lambda: build.actions(build.button("b", "same"), build.button("c", "same")),
        lambda: build.modal("t", [build.divider()] * 101, callback_id="c"),
    ],
)
def test_builders_refuse_identifiers_and_counts_they_cannot_shorten(
    make: Callable[[], Any],
) -> None:
    with pytest.raises(ValueError):
        make()
