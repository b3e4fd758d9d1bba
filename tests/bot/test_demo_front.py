"""`forgebot demo` in a terminal: the prompt comes before the bot is up (it loads behind it),
and a command typed at once runs as soon as the bot is. Driven in a pseudo-terminal, as a
person would drive it; bounded waits on what is printed, never on time."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMPT = b"U0DEVELOPER> "


def _read_until(fd: int, seen: bytearray, token: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while token not in seen:
        assert time.monotonic() < deadline, f"{token!r} never came: {bytes(seen[-2000:])!r}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk


def test_the_prompt_comes_first_and_a_command_typed_at_once_is_answered() -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the demo, in the terminal
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-c", "from bot.cli import main; main(['demo'])"])
    seen = bytearray()
    try:
        _read_until(fd, seen, PROMPT, 120)
        assert b"the bot is ready" not in seen, "the prompt comes before the bot is up"
        os.write(fd, b"/forge help\n")  # typed while the bot is still loading
        _read_until(fd, seen, b"forgebot: your platform in Slack", 180)
        os.write(fd, b"\n")
        _read_until(fd, seen, b"the bot is ready", 60)
        os.write(fd, b":quit\n")
    finally:
        _, status = os.waitpid(pid, 0)
    text = bytes(seen)
    assert text.index(PROMPT) < text.index(b"forgebot: your platform in Slack")
    assert b"Traceback" not in text
    assert os.waitstatus_to_exitcode(status) == 0
