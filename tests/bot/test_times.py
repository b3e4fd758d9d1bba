"""Every time shown to people carries its true zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from commands.deploy.freeze import FreezeState
from commands.deploy.views import frozen_text
from core.times import shown


def test_a_berlin_midnight_is_not_labelled_utc() -> None:
    end = datetime(2027, 1, 2, 0, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert shown(end) == "Sat 02 Jan 00:00 Europe/Berlin (23:00 UTC)"
    assert shown(end.astimezone(UTC)) == "Fri 01 Jan 23:00 UTC"
    assert shown(datetime(2027, 1, 1, 23, 0)) == "Fri 01 Jan 23:00 UTC"  # naive: from the DB


def test_a_catalog_freeze_window_is_shown_in_its_own_zone() -> None:
    state = FreezeState(
        environment="prod",
        reason="Year-end change freeze",
        by="forgebot",
        until=datetime(2027, 1, 2, 0, 0, tzinfo=ZoneInfo("Europe/Berlin")),
        scheduled=True,
    )
    text = frozen_text(state)
    assert "00:00 UTC" not in text
    assert "Sat 02 Jan 00:00 Europe/Berlin (23:00 UTC)" in text
