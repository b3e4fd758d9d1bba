from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from commands.environments.parse import parse_command, parse_form
from core.catalog import load_catalog
from core.errors import UserInputError

CATALOG = load_catalog(Path(__file__).parents[3] / "catalog.example.yaml")


def _values(
    template: str = "web-preview",
    name: str = "checkout-x",
    size: str = "M",
    ttl: str = "3d",
    purpose: str = "",
) -> dict[str, Any]:
    return {
        "template": {"value": {"type": "static_select", "selected_option": {"value": template}}},
        "name": {"value": {"type": "plain_text_input", "value": name}},
        "size": {"value": {"type": "static_select", "selected_option": {"value": size}}},
        "ttl": {"value": {"type": "plain_text_input", "value": ttl}},
        "purpose": {"value": {"type": "plain_text_input", "value": purpose}},
    }


def test_valid_form_gets_the_template_prefix() -> None:
    form, errors = parse_form(_values(), CATALOG)
    assert errors == {}
    assert form is not None and form.name == "pv-checkout-x" and form.ttl == timedelta(days=3)
    again, _ = parse_form(_values(name="pv-checkout-x"), CATALOG)
    assert again is not None and again.name == "pv-checkout-x", "the prefix is added once"


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("abc", True),
        ("a-1", True),
        ("abc\n", False),
        ("a;b", False),
        ("ABC", False),
        ("-a", False),
        ("a-", False),
        ("", False),
        ("a" * 61, False),
        ("1abc", False),
        ("a b", False),
        ("ä", False),
    ],
)
def test_names_must_be_dns_labels(name: str, ok: bool) -> None:
    form, errors = parse_form(_values(name=name), CATALOG)
    assert (form is not None) is ok, errors
    if not ok:
        assert "name" in errors


def test_each_field_reports_its_own_error() -> None:
    _, errors = parse_form(_values(template="nope", ttl="forever"), CATALOG)
    assert set(errors) == {"template", "ttl"}
    _, errors = parse_form(_values(template="data-sandbox", size="S"), CATALOG)
    assert "size" in errors and "M, L" in errors["size"]
    _, errors = parse_form(_values(ttl="15d"), CATALOG)
    assert "at most 14d" in errors["ttl"]


@pytest.mark.parametrize(
    ("text", "verb", "name", "scope"),
    [
        ("request", "request", "", "mine"),
        ("list", "list", "", "mine"),
        ("list all", "list", "", "all"),
        ("show pv-a", "show", "pv-a", "mine"),
        ("delete PV-A", "delete", "pv-a", "mine"),
    ],
)
def test_commands(text: str, verb: str, name: str, scope: str) -> None:
    command = parse_command(text)
    assert (command.verb, command.name, command.scope) == (verb, name, scope)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "frobnicate",
        "list everything",
        "show",
        "show a b",
        "extend pv-a",
        "extend pv-a forever",
        "delete a;b",
    ],
)
def test_bad_commands_explain_usage(text: str) -> None:
    with pytest.raises(UserInputError) as info:
        parse_command(text)
    assert info.value.usage and "/forge env request" in info.value.usage
