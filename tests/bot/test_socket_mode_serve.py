"""`forgebot serve` in Socket Mode as a real process: SIGTERM and SIGINT stop it in every state
of the connection (backing off from an unreachable Slack, connecting to one that never answers,
connected), each failed attempt is one log line and never a traceback, and a refused app token
stops it with one clear line instead of a hot loop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.socket_mode import APP_TOKEN
from tests.fixtures.slack import BOT_TOKEN, EXAMPLE_CATALOG

REPO = Path(__file__).parents[2]
STOP_BOUND_SECONDS = 10.0
"""Generous on a loaded machine; without the fix the process never stops at all."""


class Serving:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        assert process.stderr is not None
        self._reader = asyncio.create_task(self._read(process.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    async def until(self, check: Callable[[list[str]], bool], timeout: float = 60) -> None:
        """Wait for the log to show something (the process's start-up is slow under load)."""
        deadline = time.monotonic() + timeout
        while not check(self.lines):
            if self.process.returncode is not None and self._reader.done():
                raise AssertionError("forgebot exited early:\n" + "\n".join(self.lines))
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("the log never showed it:\n" + "\n".join(self.lines))
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def stop_with(self, sig: signal.Signals) -> tuple[int, float]:
        """Send `sig`; the exit code and the seconds it took."""
        sent = time.monotonic()
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), STOP_BOUND_SECONDS)
        await self._reader
        return code, time.monotonic() - sent

    async def finished(self) -> None:
        await self._reader

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


@asynccontextmanager
async def serving(
    tmp_path: Path, api_url: str, app_token: str = APP_TOKEN
) -> AsyncIterator[Serving]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": app_token,
        "SLACK_API_URL": api_url,
        "FORGEBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'forgebot.db'}",
        "FORGEBOT_CATALOG": str(EXAMPLE_CATALOG),
        "FORGEBOT_LOG_FORMAT": "console",
        "FORGEBOT_PORT": "0",
        "FORGEBOT_HOST": "127.0.0.1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "serve",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Serving(process)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


CANNOT_CONNECT = re.compile(r"Socket Mode: cannot connect to Slack \((.+)\); attempt (\d+), ")


def _attempts(lines: list[str]) -> list[int]:
    return [int(m.group(2)) for line in lines if (m := CANNOT_CONNECT.search(line))]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_stops_at_once_while_slack_is_unreachable(
    tmp_path: Path, unused_tcp_port: int, sig: signal.Signals
) -> None:
    async with serving(tmp_path, f"http://127.0.0.1:{unused_tcp_port}/api/") as bot:
        await bot.until(lambda lines: len(_attempts(lines)) >= 3)
        code, _ = await bot.stop_with(sig)
    assert code == 0, bot.log
    attempts = _attempts(bot.lines)
    assert attempts == list(range(1, len(attempts) + 1)), "one line per attempt"
    assert "Traceback" not in bot.log and "aiohttp" not in bot.log.lower(), bot.log
    delays = [float(d) for d in re.findall(r"retrying in ([\d.]+)s", bot.log)]
    assert delays[1] > delays[0] / 2 and all(0 < d <= 60 for d in delays), "backs off"


async def test_stops_at_once_while_connecting_to_a_slack_that_never_answers(
    tmp_path: Path,
) -> None:
    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        accepted.set()

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        async with serving(tmp_path, f"http://127.0.0.1:{port}/api/") as bot:
            await bot.until(lambda lines: any("forgebot ready" in line for line in lines))
            await asyncio.wait_for(accepted.wait(), 60)  # the bot is waiting for an answer
            code, _ = await bot.stop_with(signal.SIGTERM)
        assert code == 0, bot.log
        assert "Traceback" not in bot.log, bot.log
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_stops_at_once_while_connected(tmp_path: Path, fake_slack: RunningFakeSlack) -> None:
    async with serving(tmp_path, fake_slack.api_url) as bot:
        await fake_slack.socket_mode.until_connected(timeout=60)
        await bot.until(lambda lines: any("Socket Mode: connected" in line for line in lines))
        code, _ = await bot.stop_with(signal.SIGTERM)
    assert code == 0, bot.log
    assert "Traceback" not in bot.log, bot.log
    await fake_slack.socket_mode.until(
        lambda: all(c.closed for c in fake_slack.socket_mode.connections)
    )


async def test_a_refused_app_token_exits_with_one_clear_line(
    tmp_path: Path, fake_slack: RunningFakeSlack
) -> None:
    async with serving(tmp_path, fake_slack.api_url, app_token="xapp-1-wrong") as bot:
        code = await asyncio.wait_for(bot.process.wait(), 60)
        await bot.finished()
    assert code == 2, bot.log
    refused = [line for line in bot.lines if "Slack refused SLACK_APP_TOKEN" in line]
    assert len(refused) == 1 and "invalid_auth" in refused[0], bot.log
    assert "xapp-1-wrong" not in bot.log
    assert "Traceback" not in bot.log, bot.log
    assert fake_slack.socket_mode.opens == 1, "no hot loop"
