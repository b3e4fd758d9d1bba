"""The demo shows off-hours on a simulated clock: a reminder, a shutdown and a wake."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.shell import run_demo
from commands.offhours.demo import clock_jump


async def test_demo_shows_a_reminder_a_shutdown_and_a_wake(tmp_path: Path) -> None:
    script = "\n".join(
        [
            ":clock Mon 18:30 Europe/Berlin",
            ":clock +30m",
            ":clock Tue 08:00 Europe/Berlin",
            "/forge offhours show checkout-preview",
            ":clock next week",
        ]
    )
    out = io.StringIO()
    code = await run_demo(
        script=None, user=None, keep=False, out=out, stdin=io.StringIO(script), folder=tmp_path
    )
    assert code == 0
    text = out.getvalue()
    assert "checkout-preview* sleeps at *19:00 Europe/Berlin*" in text
    assert "[1] Keep running until 22:00   [2] Skip tonight   [3] Sleep now" in text
    assert "checkout-preview* is asleep until Tue 08:00 Europe/Berlin: 3 objects" in text
    assert "checkout-preview* is awake until Tue 19:00 Europe/Berlin: 3 objects restored" in text
    assert "(use :clock +2h or :clock Tue 18:30 Europe/Berlin)" in text
    assert "Traceback" not in text


def test_clock_jumps_to_the_next_local_moment_across_dst() -> None:
    # Saturday 24 October 2026, 12:00 UTC (14:00 CEST); Berlin falls back on Sunday.
    now = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    assert now + clock_jump("Mon 08:00 Europe/Berlin", now) == datetime(
        2026, 10, 26, 7, 0, tzinfo=UTC
    )
    assert clock_jump("+90m", now) == timedelta(minutes=90)
    assert now + clock_jump("Sat 14:00 Europe/Berlin", now) == datetime(
        2026, 10, 31, 13, 0, tzinfo=UTC
    ), "the same moment is a week ahead, never now"
    for bad in ("Mon 24:00 UTC", "Moo 08:00 UTC", "Mon 08:00 Mars/Base", "+soon", "tomorrow"):
        with pytest.raises(ValueError):
            clock_jump(bad, now)
