"""The HTTP surface, through signed requests with real Slack payload shapes."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from integrations.sandbox.slack_payloads import SlackIdentity, app_home_opened, slash_command
from storage import audit
from tests.fixtures.slack import DEVELOPER, SIGNING_SECRET, STRANGER, RunningBot


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def _audit(bot: RunningBot) -> list[tuple[str, str]]:
    assert bot.runtime.db is not None
    rows = await bot.runtime.db.run(lambda s: audit.recent(s))
    return [(r.command, r.outcome) for r in rows]


async def test_help_is_answered_in_the_ack(running_bot: RunningBot) -> None:
    body = slash_command(DEVELOPER, "/forge", "help", running_bot.slack.new_response_url())
    response = await running_bot.client.send(body)
    assert response.status == 200
    payload = response.json()
    assert payload["response_type"] == "ephemeral"
    assert any("help" in str(block) for block in payload["blocks"])
    assert await _wait_audit(running_bot, ("help", "ok"))


async def _wait_audit(bot: RunningBot, expected: tuple[str, str], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if expected in await _audit(bot):
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"forge": True}, "forged"),
        ({"drop_headers": True}, "missing headers"),
        ({"timestamp_offset": -400}, "stale"),
        ({"timestamp_offset": 400}, "from the future"),
        ({"timestamp": "not-a-number"}, "malformed timestamp"),
        ({"extra_headers": {"X-Slack-Signature": "garbage"}}, "malformed signature"),
    ],
)
async def test_bad_signatures_are_401_and_do_nothing(
    running_bot: RunningBot, kwargs: dict[str, object], why: str
) -> None:
    body = slash_command(DEVELOPER, "/forge", "help", running_bot.slack.new_response_url())
    if "timestamp_offset" in kwargs:
        # Computed when the request is sent: a suite that runs for minutes before this test
        # must not bring a "future" timestamp back inside the five-minute window.
        kwargs = {"timestamp": str(int(time.time()) + int(str(kwargs["timestamp_offset"])))}
    response = await running_bot.client.send(body, **kwargs)  # type: ignore[arg-type]
    assert response.status == 401, why
    await asyncio.sleep(0)  # let any (wrongly) scheduled work start
    assert await _audit(running_bot) == []
    sent = [c.method for c in running_bot.slack.state.find() if c.method != "usergroups.users.list"]
    assert sent == []


async def test_unknown_subcommand_suggests_the_closest(running_bot: RunningBot) -> None:
    body = slash_command(DEVELOPER, "/forge", "hlep me", running_bot.slack.new_response_url())
    response = await running_bot.client.send(body)
    payload = response.json()
    assert response.status == 200 and payload["response_type"] == "ephemeral"
    assert "Did you mean `/forge help`" in payload["text"]
    assert await _wait_audit(running_bot, ("unknown", "invalid"))


async def test_user_text_is_escaped(running_bot: RunningBot) -> None:
    body = slash_command(DEVELOPER, "/forge", "<!channel> hi", running_bot.slack.new_response_url())
    payload = (await running_bot.client.send(body)).json()
    assert "<!channel>" not in payload["text"] and "&lt;!channel&gt;" in payload["text"]


async def test_other_workspaces_are_refused(running_bot: RunningBot) -> None:
    outsider = SlackIdentity(user_id="U0OUTSIDE", team_id="T0OTHERORG")
    body = slash_command(outsider, "/forge", "help", running_bot.slack.new_response_url())
    response = await running_bot.client.send(body)
    assert response.status == 200
    assert "not enabled for your workspace" in response.json()["text"]


async def test_health_readiness_and_metrics(running_bot: RunningBot) -> None:
    assert await _get(running_bot.url + "/healthz") == (200, "ok")
    assert await _get(running_bot.url + "/readyz") == (200, "ready")
    await running_bot.client.send(
        slash_command(STRANGER, "/forge", "help", running_bot.slack.new_response_url())
    )
    status, text = await _get(running_bot.url + "/metrics")
    assert status == 200
    assert 'forgebot_commands_total{command="help",outcome="ok"}' in text
    assert "forgebot_ack_seconds_bucket" in text


async def test_app_home_is_published_once_per_event(running_bot: RunningBot) -> None:
    body = app_home_opened(DEVELOPER, event_id="Ev0HOME1")
    first = await running_bot.client.send(body)
    retry = await running_bot.client.send(
        body, extra_headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert first.status == retry.status == 200
    state = running_bot.slack.state
    await state.until(lambda calls: [c for c in calls if c.method == "views.publish"])
    await asyncio.sleep(0.2)
    published = state.find("views.publish")
    assert len(published) == 1
    assert published[0].args["user_id"] == "U0DEVELOPER"
    assert published[0].args["view"]["type"] == "home"


async def test_no_secret_reaches_the_logs(
    running_bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response_url = running_bot.slack.new_response_url()
    await running_bot.client.send(
        slash_command(DEVELOPER, "/forge", "help", response_url), forge=True
    )
    await running_bot.client.send(slash_command(DEVELOPER, "/forge", "nonsense", response_url))
    logged = caplog.text
    assert SIGNING_SECRET not in logged
    assert "xoxb-" not in logged
    assert response_url not in logged


async def test_slack_api_calls_are_counted(running_bot: RunningBot) -> None:
    assert running_bot.runtime.ctx is not None
    await running_bot.runtime.ctx.slack.post("C0PAYMENTS", "hello")
    _, text = await _get(running_bot.url + "/metrics")
    assert 'forgebot_slack_api_calls_total{method="chat.postMessage",outcome="ok"}' in text
