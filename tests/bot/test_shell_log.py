"""The demo's log: everything to a file, warnings without a request as one-line notices."""

from __future__ import annotations

import logging
from pathlib import Path

from bot.shell_log import logging_to_file
from core.logs import request_id


def test_warnings_become_notices_and_everything_goes_to_the_file(tmp_path: Path) -> None:
    log = logging.getLogger("tests.shell_log")
    with logging_to_file(tmp_path / "forgebot.log") as notices:
        notices.add("SLOs are ready")
        assert notices.take() == ["SLOs are ready"]
        notices.add("costs are ready")  # added after a take: still shown
        log.warning("budget check failed:\nTraceback (most recent call last): ...")
        log.info("an ordinary line")
        token = request_id.set("r1")
        try:
            log.warning("slo unavailable: the user was told")  # its user got the reply
        finally:
            request_id.reset(token)
        assert notices.take() == ["costs are ready", "warning: budget check failed:"]
    written = (tmp_path / "forgebot.log").read_text()
    assert "an ordinary line" in written and "Traceback" in written
    assert "slo unavailable" in written
