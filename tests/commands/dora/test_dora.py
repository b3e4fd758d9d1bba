"""`/forge dora` and `POST /api/deployments` through the running bot."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from commands.dora.metrics import Band, failure_band, frequency_band
from core.config import Settings
from integrations.sandbox.slack_payloads import slash_command
from tests.fixtures.slack import DEVELOPER, STRANGER, RunningBot

API_TOKEN = "ci-token-0123456789abcdef"


@pytest.fixture
def bot_settings(bot_settings: Settings) -> Settings:
    from pydantic import SecretStr

    return bot_settings.model_copy(update={"api_token": SecretStr(API_TOKEN)})


def test_bands() -> None:
    assert frequency_band(90, 30) is Band.ELITE
    assert frequency_band(6, 30) is Band.HIGH
    assert frequency_band(1, 25) is Band.MEDIUM
    assert frequency_band(1, 100) is Band.LOW
    assert frequency_band(0, 30) is Band.UNKNOWN
    assert (
        failure_band(1, 20) is Band.ELITE
        and failure_band(1, 2) is Band.LOW
        and failure_band(0, 0) is Band.UNKNOWN
    )


async def _post(
    bot: RunningBot, body: object, token: str = API_TOKEN, key: str | None = None
) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            bot.url + "/api/deployments", data=json.dumps(body), headers=headers
        ) as response,
    ):
        return response.status, await response.json()


async def test_ci_reports_feed_dora(running_bot: RunningBot) -> None:
    now = datetime.now(UTC)
    for hours_ago, lead_minutes in ((48, 30), (24, 90), (2, 60)):
        finished = now - timedelta(hours=hours_ago)
        status, body = await _post(
            running_bot,
            {
                "service": "checkout",
                "environment": "prod",
                "version": f"1.{hours_ago}.0",
                "commit_sha": "9fceb02",
                "commit_time": (finished - timedelta(minutes=lead_minutes)).isoformat(),
                "finished_at": finished.isoformat(),
            },
            key=f"pipeline-{hours_ago}",
        )
        assert status == 201, body
    # A retried report with the same key is recorded once.
    status, body = await _post(
        running_bot,
        {"service": "checkout", "environment": "prod", "version": "1.2.0"},
        key="pipeline-2",
    )
    assert status == 200 and body["status"] == "duplicate"
    # A staging deploy is not production: it counts only when staging is asked for.
    status, body = await _post(
        running_bot,
        {"service": "checkout", "environment": "staging", "version": "1.9.0"},
        key="pipeline-staging",
    )
    assert status == 201, body

    response = await running_bot.client.send(
        slash_command(DEVELOPER, "/forge", "dora checkout 7d", running_bot.slack.new_response_url())
    )
    assert response.status == 200
    calls = await running_bot.slack.state.until(
        lambda calls: [c for c in calls if c.method == "response_url"]
    )
    text = json.dumps(calls[-1].args["blocks"])
    assert "3 deploys" in text
    assert "median 1.0 h" in text, (
        text
    )  # lead times 30, 90, 60 min -> median 60 min, shown as 1.0 h
    assert "Change failure rate" in text and "0%" in text
    assert "in prod" in text and "2024 Accelerate State of DevOps report" in text

    response = await running_bot.client.send(
        slash_command(
            DEVELOPER,
            "/forge",
            "dora checkout 7d env staging",
            running_bot.slack.new_response_url(),
        )
    )
    assert response.status == 200
    calls = await running_bot.slack.state.until(
        lambda calls: [c for c in calls if c.method == "response_url"][1:]
    )
    text = json.dumps(calls[-1].args["blocks"])
    assert "1 deploy," in text and "in staging" in text and "not production" in text


@pytest.mark.parametrize(
    ("body", "token", "status"),
    [
        ({"service": "checkout", "environment": "prod", "version": "1.0"}, "wrong", 401),
        ({"service": "nope", "environment": "prod", "version": "1.0"}, API_TOKEN, 422),
        ({"service": "checkout", "environment": "moon", "version": "1.0"}, API_TOKEN, 422),
        ({"service": "checkout", "environment": "prod", "version": "evil.io/x:1"}, API_TOKEN, 422),
        (
            {
                "service": "checkout",
                "environment": "prod",
                "version": "1.0",
                "commit_time": "2026-11-24T10:00:00",
            },
            API_TOKEN,
            422,
        ),
        (
            {"service": "checkout", "environment": "prod", "version": "1.0", "surprise": 1},
            API_TOKEN,
            422,
        ),
    ],
)
async def test_api_refuses_bad_reports(
    running_bot: RunningBot, body: dict[str, object], token: str, status: int
) -> None:
    got, _ = await _post(running_bot, body, token=token)
    assert got == status


async def test_dora_bad_input_is_answered_in_the_ack(running_bot: RunningBot) -> None:
    response = await running_bot.client.send(
        slash_command(STRANGER, "/forge", "dora", running_bot.slack.new_response_url())
    )
    assert "You are in no team" in response.json()["text"]
    response = await running_bot.client.send(
        slash_command(DEVELOPER, "/forge", "dora ghosts", running_bot.slack.new_response_url())
    )
    assert "no service or team called `ghosts`" in response.json()["text"]
    response = await running_bot.client.send(
        slash_command(
            DEVELOPER, "/forge", "dora checkout env moon", running_bot.slack.new_response_url()
        )
    )
    assert (
        "There is no environment called `moon` (known: `staging`, `prod`)"
        in (response.json()["text"])
    )
    response = await running_bot.client.send(
        slash_command(DEVELOPER, "/forge", "dora checkout 5x", running_bot.slack.new_response_url())
    )
    assert "“5x” is not a duration" in response.json()["text"], "a bad period, not a bad name"
    await asyncio.sleep(0)
