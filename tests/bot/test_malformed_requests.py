"""Signed but malformed requests: 400 and one warning line, never a 500, the process unharmed;
verified requests no listener wants are acknowledged; allow-lists deny by default; and a fuzz
of every kind of body Slack sends."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.sandbox.slack_payloads import (
    app_home_opened,
    block_actions,
    button_action,
    event_callback,
    slash_command,
    view_submission,
)
from integrations.slack.body import malformed
from tests.fixtures.slack import DEVELOPER, RunningBot

ACTING_METHODS = ("chat.postMessage", "chat.update", "views.open", "views.publish", "views.update")


def _payload(value: Any) -> bytes:
    return b"payload=" + quote(json.dumps(value)).encode()


def _valid_interaction(bot: RunningBot) -> dict[str, Any]:
    body = block_actions(
        DEVELOPER, button_action("no_such_action"), response_url=bot.slack.new_response_url()
    )
    from urllib.parse import parse_qs

    parsed: dict[str, Any] = json.loads(parse_qs(body.decode())["payload"][0])
    return parsed


MALFORMED_CASES: dict[str, Any] = {
    "invalid JSON in payload": b"payload=%7Bnot-json",
    "payload is a list": _payload([1, 2]),
    "payload is a string": _payload("block_actions"),
    "invalid UTF-8": b"payload=\xff\xfe\xfa",
    "actions is empty": "actions",
    "view without type": "view",
    "event is a string": json.dumps(
        {"type": "event_callback", "event": "app_home_opened"}
    ).encode(),
    "JSON body that is a list": b"[1, 2, 3]",
}


async def _send(bot: RunningBot, body: bytes, content_type: str | None = None) -> int:
    response = await bot.client.send(body, content_type=content_type)
    return response.status


@pytest.mark.parametrize("case", list(MALFORMED_CASES))
async def test_malformed_signed_bodies_are_400_with_one_warning(
    running_bot: RunningBot, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = MALFORMED_CASES[case]
    if body == "actions":
        payload = _valid_interaction(running_bot)
        payload["actions"] = []
        body = _payload(payload)
    elif body == "view":
        payload = _valid_interaction(running_bot)
        payload.update(type="view_submission", view={"id": "V1", "state": {"values": {}}})
        body = _payload(payload)
    with caplog.at_level(logging.WARNING):
        assert await _send(running_bot, body) == 400
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "malformed" in r.message
    ]
    assert len(warnings) == 1, [r.message for r in caplog.records]
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)
    # The process is unharmed: the next request is served.
    help_reply = await running_bot.client.send(
        slash_command(DEVELOPER, "/forge", "help", running_bot.slack.new_response_url())
    )
    assert help_reply.status == 200 and "forge" in help_reply.body


async def test_a_form_body_sent_as_json_is_400(running_bot: RunningBot) -> None:
    body = slash_command(DEVELOPER, "/forge", "help", running_bot.slack.new_response_url())
    assert await _send(running_bot, body, content_type="application/json") == 400


async def test_requests_no_listener_handles_are_acknowledged(running_bot: RunningBot) -> None:
    unknown_action = block_actions(
        DEVELOPER,
        button_action("retired_button"),
        response_url=running_bot.slack.new_response_url(),
    )
    unknown_view = view_submission(
        DEVELOPER,
        {"type": "modal", "callback_id": "retired_view", "blocks": []},
        {},
    )
    unknown_event = event_callback(DEVELOPER, {"type": "reaction_added", "user": "U0DEVELOPER"})
    for body in (unknown_action, unknown_view, unknown_event):
        response = await running_bot.client.send(body)
        assert 200 <= response.status < 300, (response.status, response.body)


@pytest.mark.parametrize("missing", ["team", "enterprise"])
async def test_allow_lists_deny_requests_that_do_not_say_where_they_come_from(
    running_bot: RunningBot, missing: str
) -> None:
    settings_ = running_bot.runtime.settings
    if missing == "enterprise":
        settings_.allowed_enterprise_ids = ["E0SANDBOX"]
        who = DEVELOPER  # the sandbox workspace is not in an enterprise: no enterprise id
    else:
        who = dataclasses.replace(DEVELOPER, team_id="")
    response = await running_bot.client.send(
        slash_command(who, "/forge", "help", running_bot.slack.new_response_url())
    )
    assert response.status == 200
    assert "not enabled for your" in response.json()["text"]


def test_well_formed_bodies_pass_the_shape_check() -> None:
    assert malformed(b"command=%2Fforge&text=help", "application/x-www-form-urlencoded") is None
    assert malformed(app_home_opened(DEVELOPER), "application/json") is None


# --- fuzz ----------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


def _mutate(value: Any, rng: random.Random, replacement: Any) -> Any:
    """Replace one randomly chosen node of a JSON document."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: _mutate(value[key], rng, replacement)}
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate(value[index], rng, replacement), *value[index + 1 :]]
    return replacement


def _templates(bot: RunningBot) -> list[tuple[str, Any]]:
    interaction = _valid_interaction(bot)
    view = dict(
        interaction,
        type="view_submission",
        view={
            "id": "V0FUZZ",
            "type": "modal",
            "callback_id": "env_request",
            "private_metadata": "{}",
            "state": {"values": {"name": {"value": {"type": "plain_text_input", "value": "x"}}}},
        },
    )
    options = dict(interaction, type="block_suggestion", action_id="service", value="che")
    event = json.loads(app_home_opened(DEVELOPER))
    command = {
        "command": "/env",
        "text": "extend x 1d",
        "user_id": "U0DEVELOPER",
        "team_id": "T0SANDBOX",
        "channel_id": "C0PAYMENTS",
        "api_app_id": "A0FORGEBOT",
        "trigger_id": "1.2.3",
        "response_url": bot.slack.new_response_url(),
    }
    return [
        ("interaction", interaction),
        ("interaction", view),
        ("interaction", options),
        ("event", event),
        ("command", command),
    ]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    which=st.integers(min_value=0, max_value=4),
    seed=st.integers(min_value=0, max_value=2**32),
    replacement=JSON_VALUES,
    cut=st.integers(min_value=0, max_value=4096),
    garbage=st.binary(max_size=6),
    to_api=st.booleans(),
)
async def test_fuzzed_signed_bodies_never_get_a_500(
    running_bot: RunningBot,
    which: int,
    seed: int,
    replacement: Any,
    cut: int,
    garbage: bytes,
    to_api: bool,
) -> None:
    kind, template = _templates(running_bot)[which]
    rng = random.Random(seed)
    mutated = _mutate(template, rng, replacement)
    if kind == "interaction":
        body = _payload(mutated)
    elif kind == "event":
        body = json.dumps(mutated).encode()
    else:
        body = "&".join(
            f"{k}={quote(json.dumps(v) if not isinstance(v, str) else v)}"
            for k, v in (mutated.items() if isinstance(mutated, dict) else [("x", mutated)])
        ).encode()
    if rng.random() < 0.3:
        body = body[: cut % (len(body) + 1)] + garbage
    running_bot.slack.state.reset()
    if to_api:
        response = await running_bot.client.send(body, path="/api/deployments")
        # 503 here is the API switched off (no FORGEBOT_API_TOKEN), never a crash.
        assert response.status != 500 and (response.status < 500 or "disabled" in response.body)
        return
    response = await running_bot.client.send(body)
    assert response.status < 500, (response.status, body[:200])
    assert (
        await _send(
            running_bot,
            slash_command(DEVELOPER, "/forge", "help", running_bot.slack.new_response_url()),
        )
        == 200
    )
