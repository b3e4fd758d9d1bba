"""No parser's error echoes user input that Slack would act on: whatever someone types, the
answer never carries an unescaped `<!`, `<@`, `<#` or `&` from it (property test)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.cost import parse as cost_parse
from commands.deploy import parse as deploy_parse
from commands.environments import parse as env_parse
from commands.offhours import parse as offhours_parse
from core.catalog import Catalog, load_catalog
from core.durations import parse_duration
from core.schedule import parse_schedule
from tests.fixtures.slack import EXAMPLE_CATALOG

DANGEROUS = ["<!channel>", "<!here>", "<@U0ADMIN>", "<#C0SECRET>", "&", "<https://x.example|y>"]
WORDS = st.sampled_from(
    [
        *DANGEROUS,
        "checkout",
        "staging",
        "to",
        "for",
        "3d",
        "1.4.2",
        "Mon-Fri",
        "08:00-19:00",
        "UTC",
        "Europe",
        "extend",
        "delete",
        "show",
        "wake",
        "budget",
        "team",
        "by",
        "last",
        "x",
    ]
)
TEXT = st.lists(WORDS | st.text(max_size=6), min_size=0, max_size=6).map(" ".join)
_BAD_AMP = re.compile(r"&(?!amp;|lt;|gt;)")


CATALOG = load_catalog(EXAMPLE_CATALOG)


def _parsers(catalog: Catalog) -> dict[str, Callable[[str], Any]]:
    return {
        "duration": parse_duration,
        "schedule": parse_schedule,
        "version": deploy_parse.parse_version,
        "deploy": deploy_parse.parse_deploy,
        "rollback": deploy_parse.parse_rollback,
        "freeze": deploy_parse.parse_freeze,
        "env": env_parse.parse_command,
        "offhours": offhours_parse.parse_command,
        "wake": offhours_parse.parse_wake,
        "cost": lambda text: cost_parse.parse_cost(text, catalog),
        "budget": lambda text: cost_parse.parse_budget(text, catalog),
        "amount": cost_parse.parse_amount,
    }


def _answer(exc: Exception) -> str:
    return " ".join([str(exc), str(getattr(exc, "usage", "") or "")])


@pytest.mark.parametrize(
    "name",
    [
        "duration",
        "schedule",
        "version",
        "deploy",
        "rollback",
        "freeze",
        "env",
        "offhours",
        "wake",
        "cost",
        "budget",
        "amount",
    ],
)
@settings(max_examples=150, deadline=None)
@given(text=TEXT)
def test_parser_errors_never_echo_active_slack_markup(name: str, text: str) -> None:
    try:
        _parsers(CATALOG)[name](text)
    except Exception as exc:  # every parser error the user would see
        answer = _answer(exc)
        for marker in ("<!", "<@", "<#", "<http"):
            assert marker not in answer, (name, text, answer)
        assert not _BAD_AMP.search(answer), (name, text, answer)
