"""`/forge freeze` and `/forge unfreeze` through the running bot, and catalog freeze windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from commands.deploy.freeze import window_covers
from core.catalog import FreezeWindow
from integrations.sandbox.slack_payloads import slash_command
from tests.fixtures.slack import DEVELOPER, ONCALL, PLATFORM, RunningBot


async def _say(bot: RunningBot, who: object, text: str) -> str:
    seen = len([c for c in bot.slack.state.calls if c.method == "response_url"])
    response = await bot.client.send(
        slash_command(who, "/forge", text, bot.slack.new_response_url())
    )  # type: ignore[arg-type]
    assert response.status == 200
    if response.body:
        return str(response.json().get("text", ""))
    assert bot.runtime.ctx is not None
    await bot.runtime.ctx.settle()  # the answer comes after the ack: wait for that work
    calls = [c for c in bot.slack.state.calls if c.method == "response_url"]
    assert calls[seen:], "no answer"
    return json.dumps(calls[-1].args)


async def test_on_call_freezes_and_platform_unfreezes(running_bot: RunningBot) -> None:
    denied = await _say(running_bot, DEVELOPER, "freeze staging for 2h testing")
    assert "needs" in denied and "on call" in denied
    frozen = await _say(running_bot, ONCALL, "freeze staging for 2h incident <!channel> 4411")
    assert "is frozen until" in frozen
    assert "incident &lt;!channel&gt; 4411" in frozen and "<!channel>" not in frozen
    freezes = running_bot.runtime.ctx.freezes  # type: ignore[union-attr]
    state = await freezes.frozen("staging")
    assert state is not None and state.by == "U0ONCALL" and not state.scheduled
    running_bot.slack.state.reset()
    status = await _say(running_bot, DEVELOPER, "freeze")
    assert "staging" in status and "U0ONCALL" in status
    running_bot.slack.state.reset()
    opened = await _say(running_bot, PLATFORM, "unfreeze staging")
    assert "open for deploys again" in opened
    assert '"response_type": "in_channel"' in opened, "the channel learns of a lifted freeze"
    assert await freezes.frozen("staging") is None
    running_bot.slack.state.reset()
    nothing = await _say(running_bot, PLATFORM, "unfreeze staging")
    assert '"response_type": "ephemeral"' in nothing, "nothing lifted: only the asker is told"


async def test_bad_freeze_input(running_bot: RunningBot) -> None:
    assert "needs a reason" in await _say(running_bot, ONCALL, "freeze prod")
    running_bot.slack.state.reset()
    assert "no environment called moon" in await _say(running_bot, ONCALL, "freeze moon for 1h why")


@pytest.mark.parametrize(
    ("start", "end", "at", "covered"),
    [
        ("2026-12-23T00:00", "2027-01-02T00:00", datetime(2026, 12, 24, 12, 0, tzinfo=UTC), True),
        (
            "2026-12-23T00:00",
            "2027-01-02T00:00",
            datetime(2026, 12, 22, 22, 59, tzinfo=UTC),
            False,
        ),  # 23:59 Berlin
        (
            "2026-12-23T00:00",
            "2027-01-02T00:00",
            datetime(2026, 12, 22, 23, 0, tzinfo=UTC),
            True,
        ),  # 00:00 Berlin
        ("Fri 16:00", "Mon 08:00", datetime(2026, 11, 28, 12, 0, tzinfo=UTC), True),  # Saturday
        (
            "Fri 16:00",
            "Mon 08:00",
            datetime(2026, 11, 27, 14, 59, tzinfo=UTC),
            False,
        ),  # Fri 15:59 Berlin
        (
            "Fri 16:00",
            "Mon 08:00",
            datetime(2026, 11, 30, 7, 0, tzinfo=UTC),
            False,
        ),  # Mon 08:00 Berlin
    ],
)
def test_catalog_windows_in_their_time_zone(
    start: str, end: str, at: datetime, covered: bool
) -> None:
    window = FreezeWindow(name="w", timezone="Europe/Berlin", start=start, end=end)
    assert (window_covers(window, at) is not None) is covered
