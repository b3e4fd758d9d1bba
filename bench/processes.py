"""Running `forgebot serve` as its own process for the benchmarks, as in production: the
benchmark process plays Slack (and the cluster or AWS) on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(
    url: str, started: float, timeout: float = 30.0, path: str = "/healthz"
) -> float:
    """Seconds from `started` (a perf_counter reading) until `url + path` answers 200."""
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() - started < timeout:
            try:
                async with session.get(url + path) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
    raise RuntimeError(f"{url} did not become healthy")


def bot_environment(
    *,
    token: str,
    secret: str,
    slack_api_url: str,
    database: Path,
    catalog: Path,
    inherit: Mapping[str, str] = os.environ,
    **extra: str,
) -> dict[str, str]:
    """The bot's environment variables; `extra` adds or overrides (e.g. KUBECONFIG)."""
    return {
        **inherit,
        "SLACK_BOT_TOKEN": token,
        "SLACK_SIGNING_SECRET": secret,
        "SLACK_API_URL": slack_api_url,
        "FORGEBOT_DATABASE_URL": f"sqlite:///{database}",
        "FORGEBOT_CATALOG": str(catalog),
        "FORGEBOT_LOG_LEVEL": "WARNING",
        **extra,
    }


def start_forgebot(
    env: Mapping[str, str], port: int, *, python_args: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """`forgebot db upgrade` first, as production would run it, so the start-up figures are the
    server's own; then `forgebot serve` on 127.0.0.1:`port`."""
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "upgrade"],
        env=dict(env),
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return subprocess.Popen(
        [
            sys.executable,
            *python_args,
            "-m",
            "bot.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=dict(env),
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
