"""The payload builders produce what Slack sends: a real bolt app, verifying signatures, routes
and reads them, and answers through the fake Slack Web API and response_url."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from integrations.sandbox.slack_api import RunningFakeSlack
from tests.fixtures.slack import BOT_TOKEN, DEVELOPER
from tests.slack_requests import (
    SignedSlackClient,
    SlackIdentity,
    app_home_opened,
    block_actions,
    button_action,
    event_callback,
    select_action,
    slash_command,
    state_values,
    url_verification,
    view_closed,
    view_submission,
)

SECRET = "payload-test-signing-secret"
CHANNEL = DEVELOPER.channel_id
SIZES = [
    {"text": {"type": "plain_text", "text": "Small"}, "value": "s"},
    {"text": {"type": "plain_text", "text": "Large"}, "value": "l"},
]
REQUEST_MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "env.request",
    "private_metadata": json.dumps({"channel": CHANNEL}),
    "title": {"type": "plain_text", "text": "New environment"},
    "submit": {"type": "plain_text", "text": "Request"},
    "notify_on_close": True,
    "blocks": [
        {
            "type": "input",
            "block_id": "name",
            "label": {"type": "plain_text", "text": "Name"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        },
        {
            "type": "input",
            "block_id": "size",
            "label": {"type": "plain_text", "text": "Size"},
            "element": {"type": "static_select", "action_id": "value", "options": SIZES},
        },
        {
            "type": "input",
            "block_id": "region",
            "label": {"type": "plain_text", "text": "Region"},
            "element": {"type": "radio_buttons", "action_id": "value", "options": SIZES},
        },
        {
            "type": "input",
            "block_id": "replicas",
            "label": {"type": "plain_text", "text": "Replicas"},
            "element": {"type": "number_input", "action_id": "value", "is_decimal_allowed": False},
        },
        {
            "type": "input",
            "block_id": "until",
            "label": {"type": "plain_text", "text": "Until"},
            "element": {"type": "datepicker", "action_id": "value"},
        },
        {
            "type": "input",
            "block_id": "owner",
            "optional": True,
            "label": {"type": "plain_text", "text": "Owner"},
            "element": {"type": "users_select", "action_id": "value"},
        },
    ],
}


class Bolt:
    """A bolt app on loopback that remembers what each listener was given."""

    def __init__(self, fake: RunningFakeSlack) -> None:
        self.seen: dict[str, Any] = {}
        self.app = AsyncApp(
            signing_secret=SECRET,
            client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url),
        )
        app = self.app

        @app.command("/forge")
        async def command(ack: Any, command: dict[str, Any], respond: Any) -> None:
            self.seen["command"] = command
            await ack(f"working on `{command['text']}`")
            await respond(text="done", response_type="ephemeral")

        @app.action("approve")
        async def approve(
            ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any
        ) -> None:
            self.seen["approve"] = (body, action)
            await ack()
            await respond(text="Approved", replace_original=True)

        @app.action({"block_id": "size", "action_id": "value"})
        async def size_changed(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
            self.seen["size"] = (body, action)
            await ack()

        @app.view("env.request")
        async def submitted(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
            self.seen["submission"] = (body, view)
            name = view["state"]["values"]["name"]["value"]["value"]
            if name == "taken":
                await ack(response_action="errors", errors={"name": "That name is taken"})
            else:
                await ack()

        @app.view_closed("env.request")
        async def closed(ack: Any, body: dict[str, Any]) -> None:
            self.seen["closed"] = body
            await ack()

        @app.event("app_home_opened")
        async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
            self.seen["home"] = event
            await client.views_publish(
                user_id=event["user"], view={"type": "home", "blocks": [{"type": "divider"}]}
            )


@pytest.fixture
async def bolt(fake_slack: RunningFakeSlack) -> AsyncIterator[tuple[Bolt, SignedSlackClient]]:
    bolt = Bolt(fake_slack)
    runner = web.AppRunner(bolt.app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with SignedSlackClient(f"http://127.0.0.1:{port}", SECRET) as client:
        yield bolt, client
    await runner.cleanup()


async def test_a_slash_command_is_read_and_answered(
    bolt: tuple[Bolt, SignedSlackClient], fake_slack: RunningFakeSlack
) -> None:
    app, client = bolt
    body = slash_command(DEVELOPER, "/forge", "env list", fake_slack.new_response_url())

    response = await client.send(body)

    assert (response.status, response.body) == (200, "working on `env list`")
    command = app.seen["command"]
    assert {k: command[k] for k in ("user_id", "team_id", "channel_id", "command", "text")} == {
        "user_id": "U0DEVELOPER",
        "team_id": "T0SANDBOX",
        "channel_id": CHANNEL,
        "command": "/forge",
        "text": "env list",
    }
    assert set(parse_qs(body.decode())) >= {
        "token",
        "team_domain",
        "channel_name",
        "user_name",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
    [later] = await fake_slack.until_call("response_url")
    assert later.args == {"text": "done", "response_type": "ephemeral"}


def test_enterprise_ids_are_included_only_for_grid_workspaces() -> None:
    grid = SlackIdentity("U0GRID", enterprise_id="E0GRID")
    assert parse_qs(slash_command(grid, "/forge", "", "u").decode())["enterprise_id"] == ["E0GRID"]
    assert "enterprise_id" not in parse_qs(slash_command(DEVELOPER, "/forge", "", "u").decode())


async def test_a_button_click_on_a_message(
    bolt: tuple[Bolt, SignedSlackClient],
    fake_slack: RunningFakeSlack,
    slack_web_client: AsyncWebClient,
) -> None:
    app, client = bolt
    button = button_action("approve", "req-42", block_id="decision", text="Approve")
    posted = await slack_web_client.chat_postMessage(
        channel=CHANNEL,
        text="Approve req-42?",
        blocks=[{"type": "actions", "block_id": "decision", "elements": [button]}],
    )
    message = posted["message"]

    response = await client.send(
        block_actions(
            DEVELOPER,
            button,
            response_url=fake_slack.new_response_url(CHANNEL, message["ts"]),
            message=message,
        )
    )

    assert response.status == 200
    body, action = app.seen["approve"]
    assert (action["action_id"], action["block_id"], action["value"]) == (
        "approve",
        "decision",
        "req-42",
    )
    assert action["type"] == "button" and float(action["action_ts"]) > 0
    assert body["user"] == {
        "id": "U0DEVELOPER",
        "username": "dev",
        "name": "dev",
        "team_id": "T0SANDBOX",
    }
    assert body["container"] == {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }
    assert body["channel"]["id"] == CHANNEL and body["message"]["blocks"] == message["blocks"]
    assert body["trigger_id"] and body["api_app_id"] == "A0FORGEBOT"
    await fake_slack.until_call("response_url")
    assert fake_slack.messages_in(CHANNEL)[message["ts"]]["text"] == "Approved"


async def test_a_select_inside_a_modal(
    bolt: tuple[Bolt, SignedSlackClient], slack_web_client: AsyncWebClient
) -> None:
    app, client = bolt
    view = (await slack_web_client.views_open(trigger_id="t", view=REQUEST_MODAL))["view"]

    await client.send(
        block_actions(
            DEVELOPER, select_action("value", SIZES[1], block_id="size"), response_url="", view=view
        )
    )

    body, action = app.seen["size"]
    assert action["selected_option"] == SIZES[1] and action["type"] == "static_select"
    assert body["container"] == {"type": "view", "view_id": view["id"]}
    assert body["view"]["hash"] == view["hash"] and "response_url" not in body


async def test_a_modal_submission_carries_state_values_shaped_like_slack(
    bolt: tuple[Bolt, SignedSlackClient], slack_web_client: AsyncWebClient
) -> None:
    app, client = bolt
    view = (await slack_web_client.views_open(trigger_id="t", view=REQUEST_MODAL))["view"]
    answers = {"name": "pr-981", "size": "l", "region": "s", "replicas": 3, "until": "2026-12-01"}

    response = await client.send(view_submission(DEVELOPER, view, state_values(view, answers)))

    assert response.status == 200 and response.body == ""
    _, submitted = app.seen["submission"]
    assert submitted["id"] == view["id"] and submitted["callback_id"] == "env.request"
    assert json.loads(submitted["private_metadata"]) == {"channel": CHANNEL}
    assert submitted["state"]["values"] == {
        "name": {"value": {"type": "plain_text_input", "value": "pr-981"}},
        "size": {"value": {"type": "static_select", "selected_option": SIZES[1]}},
        "region": {"value": {"type": "radio_buttons", "selected_option": SIZES[0]}},
        "replicas": {"value": {"type": "number_input", "value": "3"}},
        "until": {"value": {"type": "datepicker", "selected_date": "2026-12-01"}},
        "owner": {"value": {"type": "users_select", "selected_user": None}},
    }


async def test_a_submission_can_be_answered_with_errors(
    bolt: tuple[Bolt, SignedSlackClient],
) -> None:
    _, client = bolt
    values = state_values(REQUEST_MODAL, {"name": "taken", "size": "s"})
    response = await client.send(view_submission(DEVELOPER, REQUEST_MODAL, values))
    assert response.json() == {
        "response_action": "errors",
        "errors": {"name": "That name is taken"},
    }


def test_state_values_refuse_answers_the_view_cannot_take() -> None:
    with pytest.raises(ValueError, match="not an option"):
        state_values(REQUEST_MODAL, {"size": "xl"})
    with pytest.raises(ValueError, match="no input blocks"):
        state_values(REQUEST_MODAL, {"colour": "red"})


async def test_closing_a_modal(bolt: tuple[Bolt, SignedSlackClient]) -> None:
    app, client = bolt
    response = await client.send(view_closed(DEVELOPER, REQUEST_MODAL, is_cleared=True))
    assert response.status == 200
    closed = app.seen["closed"]
    assert closed["type"] == "view_closed" and closed["is_cleared"] is True
    assert closed["view"]["callback_id"] == "env.request"


async def test_app_home_opened_publishes_through_the_fake(
    bolt: tuple[Bolt, SignedSlackClient], fake_slack: RunningFakeSlack
) -> None:
    app, client = bolt
    response = await client.send(app_home_opened(DEVELOPER, event_id="Ev0HOME"))

    assert response.status == 200
    [published] = await fake_slack.until_call("views.publish", user_id="U0DEVELOPER")
    assert published.args["view"]["type"] == "home"
    event = app.seen["home"]
    assert (event["type"], event["user"], event["tab"]) == (
        "app_home_opened",
        "U0DEVELOPER",
        "home",
    )
    envelope = json.loads(app_home_opened(DEVELOPER, event_id="Ev0HOME"))
    assert envelope["event_id"] == "Ev0HOME" and envelope["type"] == "event_callback"
    assert envelope["authorizations"][0] == {
        "enterprise_id": None,
        "team_id": "T0SANDBOX",
        "user_id": "U0FORGEBOT",
        "is_bot": True,
        "is_enterprise_install": False,
    }
    assert isinstance(envelope["event_time"], int) and envelope["api_app_id"] == "A0FORGEBOT"


async def test_url_verification_is_answered_with_the_challenge(
    bolt: tuple[Bolt, SignedSlackClient],
) -> None:
    _, client = bolt
    response = await client.send(
        url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    )
    assert response.status == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


@pytest.mark.parametrize(
    "options", [{"forge": True}, {"timestamp": "1000000000"}, {"drop_headers": True}]
)
async def test_bolt_refuses_what_is_not_signed_by_slack(
    bolt: tuple[Bolt, SignedSlackClient], options: dict[str, Any]
) -> None:
    app, client = bolt
    event = event_callback(
        DEVELOPER, {"type": "app_home_opened", "user": "U0DEVELOPER", "tab": "home"}
    )
    assert (await client.send(event, **options)).status == 401
    assert "home" not in app.seen
