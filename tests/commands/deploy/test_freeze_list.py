"""`/forge freeze` with no arguments: the freezes in force (per environment and per service) and
the catalog's freeze windows of the next 14 days, each time with its zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from commands.deploy.freeze_calendar import upcoming_windows
from commands.deploy.parse import FreezeRequest
from core.auth import Actor
from core.catalog import Catalog, FreezeWindow
from integrations.sandbox.slack_payloads import slash_command
from tests.fixtures.slack import DEVELOPER, RunningBot

WEEKEND = FreezeWindow(
    name="weekend", timezone="Europe/Berlin", start="Fri 16:00", end="Mon 08:00", reason="Weekend"
)


def _with_windows(catalog: Catalog, *windows: FreezeWindow) -> Catalog:
    environments = [
        e.model_copy(update={"freeze_windows": [*e.freeze_windows, *windows]})
        if e.name == "staging"
        else e
        for e in catalog.environments
    ]
    return catalog.model_copy(update={"environments": environments})


@pytest.fixture
def catalog(catalog: Catalog) -> Catalog:
    return _with_windows(catalog, WEEKEND)


def test_weekly_and_one_off_windows_of_the_next_14_days(catalog: Catalog) -> None:
    # Tuesday 22 Dec 2026, 10:00 UTC: the year-end window starts tomorrow at midnight Berlin.
    now = datetime(2026, 12, 22, 10, 0, tzinfo=UTC)
    found = upcoming_windows(catalog, now)
    starts = [(w.environment, w.name, w.starts.isoformat()) for w in found]
    assert starts == [
        ("prod", "year-end", "2026-12-23T00:00:00+01:00"),
        ("staging", "weekend", "2026-12-25T16:00:00+01:00"),
        ("staging", "weekend", "2027-01-01T16:00:00+01:00"),
    ]
    assert found[1].ends.isoformat() == "2026-12-28T08:00:00+01:00"
    # A window in force now is a freeze, not an upcoming one; 15 days ahead is too far.
    assert upcoming_windows(catalog, datetime(2026, 12, 24, tzinfo=UTC))[0].name == "weekend"
    assert not [
        w
        for w in upcoming_windows(catalog, datetime(2026, 12, 7, tzinfo=UTC))
        if w.environment == "prod"
    ]


def test_weekly_windows_keep_their_wall_clock_time_across_daylight_saving(
    catalog: Catalog,
) -> None:
    now = datetime(2026, 10, 20, tzinfo=UTC)  # Berlin leaves summer time on 25 October
    found = [w for w in upcoming_windows(catalog, now) if w.environment == "staging"]
    assert [w.starts.isoformat() for w in found] == [
        "2026-10-23T16:00:00+02:00",
        "2026-10-30T16:00:00+01:00",
    ]
    assert found[0].ends.isoformat() == "2026-10-26T08:00:00+01:00"


async def _freeze_list(bot: RunningBot) -> str:
    response = await bot.client.send(
        slash_command(DEVELOPER, "/forge", "freeze", bot.slack.new_response_url())
    )
    assert response.status == 200
    assert bot.runtime.ctx is not None
    await bot.runtime.ctx.settle()
    calls = [c for c in bot.slack.state.calls if c.method == "response_url"]
    assert calls, "no answer"
    return json.dumps(calls[-1].args)


async def test_the_list_shows_freezes_in_force_and_upcoming_windows(
    running_bot: RunningBot,
) -> None:
    ctx = running_bot.runtime.ctx
    assert ctx is not None
    freezes = ctx.freezes
    await freezes.freeze(
        Actor("U0ONCALL"),
        FreezeRequest(
            "prod", timedelta(hours=4), "error budget burn on checkout/availability", "checkout"
        ),
    )
    answer = await _freeze_list(running_bot)
    assert answer.count('"response_type": "ephemeral"') == 1
    assert "*checkout* in *prod*" in answer and "<@U0ONCALL>" in answer
    assert "Freeze windows in the next 14 days" in answer
    assert "*staging* Weekend: from Fri" in answer
    assert "16:00 Europe/Berlin" in answer and "08:00 Europe/Berlin" in answer
