"""Real forgebot processes for fault tests (`tests/faults/`) and `bench/faults.py`.

Each bot is `forgebot serve` in HTTP mode, as a pod runs it, talking to the fake Slack Web API
and the fake Kubernetes API server, on a PostgreSQL database made for the run and reached
through a loopback TCP proxy that the caller cuts and restores (a real network fault; the
machine's PostgreSQL itself is never stopped). A bot is killed with SIGKILL (`kill -9`), by the
caller or by itself at a named step (the fault hook, `core/faults.py`), or stopped with SIGTERM.

`Flows` drives the bot the way Slack does (signed requests) and `Ledger` reads what happened:
the operation rows (straight from PostgreSQL, not through the proxy), the writes the fake
Kubernetes API server saw, and what the fake Slack received.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack
from integrations.sandbox.slack_payloads import (
    SignedSlackClient,
    SlackIdentity,
    block_actions,
    slash_command,
    view_submission,
)
from storage import migrate
from storage.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
FORGEBOT = Path(sys.executable).parent / "forgebot"
PG_ADMIN_URL = os.environ.get("FORGEBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-0000-sandbox"
EXAMPLE_CATALOG = ROOT / "catalog.example.yaml"
IMAGE = "registry.example.com/payments/checkout"
TERMINAL = ("succeeded", "failed")

DEVELOPER = SlackIdentity(user_id="U0DEVELOPER", user_name="dev", channel_id="C0PAYMENTS")
ONCALL = SlackIdentity(user_id="U0ONCALL", user_name="oncall", channel_id="C0PAYMENTS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated PostgreSQL database of its own (dropped afterwards); returns its URL."""
    name = f"forgebot_faults_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_database(url: str) -> None:
    """Every table emptied (between cases sharing one database; no bot may be running)."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


async def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Bounded polling on a condition (never a sleep to pass)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Bot:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    armed: Path
    """The file its fault hook reads (`core/faults.py`)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Fleet:
    """forgebot processes of one deployment, sharing the database (through `database_url`)."""

    tmp: Path
    database_url: str
    slack_api_url: str
    kubeconfig: Path
    lease_seconds: float = 2.0
    recovery_seconds: float = 1.0
    bots: list[Bot] = field(default_factory=list)

    def env(self, name: str, kill_at: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FORGEBOT_", "SLACK_"))}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env |= {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.slack_api_url,
            "FORGEBOT_DATABASE_URL": self.database_url,
            "FORGEBOT_CATALOG": str(EXAMPLE_CATALOG),
            "FORGEBOT_ALLOWED_TEAM_IDS": "T0SANDBOX",
            "FORGEBOT_ALLOWED_APP_IDS": "A0FORGEBOT",
            "KUBECONFIG": str(self.kubeconfig),
            "FORGEBOT_REPLICA": name,
            "FORGEBOT_OPERATION_LEASE_SECONDS": str(self.lease_seconds),
            "FORGEBOT_RECOVERY_SECONDS": str(self.recovery_seconds),
            "FORGEBOT_SHUTDOWN_SECONDS": "3",
            "FORGEBOT_LOG_LEVEL": "INFO",
            "FORGEBOT_LOG_FORMAT": "console",
        }
        if kill_at:
            env["FORGEBOT_FAULT_KILL_AT"] = kill_at
        return env

    def start(self, name: str, *, kill_at: str | None = None) -> Bot:
        """A new bot; `kill_at` arms its fault hook from the start, else `arm` does later."""
        port = free_port()
        log = self.tmp / f"{name}.log"
        armed = self.tmp / f"{name}.kill"
        armed.write_text(kill_at or "")
        with log.open("ab") as out:
            process = subprocess.Popen(
                [str(FORGEBOT), "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=self.tmp,
                env=self.env(name, f"@{armed}"),
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        bot = Bot(name, port, process, log, armed)
        self.bots.append(bot)
        return bot

    def arm(self, bot: Bot, step: str) -> None:
        """The bot kills itself at `step` (`STEP#N`: the N-th time from now)."""
        bot.armed.write_text(step)

    def disarm(self, bot: Bot) -> None:
        bot.armed.write_text("")

    async def ready(self, bot: Bot, timeout: float = 60) -> None:
        async def check() -> bool:
            if not bot.alive:
                raise AssertionError(f"{bot.name} exited at start-up:\n{bot.tail()}")
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(bot.url + "/readyz") as response,
                ):
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await until(check, timeout, f"{bot.name} ready")

    async def exited(self, bot: Bot, timeout: float) -> int:
        await until(lambda: not bot.alive, timeout, f"{bot.name} to exit")
        return int(bot.process.returncode)

    def kill(self, bot: Bot) -> None:
        if bot.alive:
            bot.process.send_signal(signal.SIGKILL)
        bot.process.wait(10)

    def terminate(self, bot: Bot) -> None:
        if bot.alive:
            bot.process.send_signal(signal.SIGTERM)

    def stop_all(self) -> None:
        for bot in self.bots:
            if bot.alive:
                bot.process.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                bot.process.wait(10)


# --- what happened ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    id: str
    kind: str
    state: str
    attempts: int
    error: str
    actor: str
    created_at: Any
    finished_at: Any
    deadline_at: Any
    payload: dict[str, Any]


class Ledger:
    """The operation rows (read straight from PostgreSQL) and the side effects at the fakes."""

    def __init__(self, direct_url: str, kube: FakeKube, slack: RunningFakeSlack) -> None:
        self.direct_url, self.kube, self.slack = direct_url, kube, slack

    def rows(self) -> list[Row]:
        with psycopg.connect(self.direct_url, autocommit=True, connect_timeout=3) as conn:
            found = conn.execute(
                "SELECT id, kind, state, attempts, error, actor_user_id, created_at, "
                "finished_at, deadline_at, payload FROM operations ORDER BY created_at"
            ).fetchall()
        return [Row(*r) for r in found]

    def env_id(self, name: str) -> int | None:
        with psycopg.connect(self.direct_url, autocommit=True, connect_timeout=3) as conn:
            found = conn.execute(
                "SELECT id FROM environments WHERE name = %s ORDER BY id DESC LIMIT 1", (name,)
            ).fetchone()
        return int(found[0]) if found else None


# --- the flows, as Slack sends them ------------------------------------------------------------
class Flows:
    """Signed Slack requests to one bot (re-pointed with `use` after a restart)."""

    def __init__(self, slack: RunningFakeSlack) -> None:
        self.slack = slack
        self.client: SignedSlackClient | None = None

    async def use(self, bot: Bot) -> None:
        if self.client is not None:
            await self.client.close()
        self.client = SignedSlackClient(bot.url, SIGNING_SECRET)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def _send(self, body: bytes) -> dict[str, Any]:
        assert self.client is not None
        response = await self.client.send(body)
        assert response.status == 200, (response.status, response.body[:300])
        return response.json() if response.body else {}

    async def command(self, who: SlackIdentity, command: str, text: str) -> str:
        """Sends the command; returns its response_url token (to find the answer later)."""
        url = self.slack.new_response_url()
        await self._send(slash_command(who, command, text, url))
        return url.rsplit("/", 1)[-1]

    async def answer(self, token: str, timeout: float = 15) -> RecordedCall:
        calls: list[RecordedCall] = await self.slack.state.until(
            lambda calls: [c for c in calls if c.method == "response_url" and c.target == token],
            timeout=timeout,
        )
        return calls[-1]

    # environments
    async def request_environment(self, who: SlackIdentity, name: str) -> None:
        """`/env request`, then the dialog submitted (auto-approved for a developer)."""
        seen = len(self.slack.state.find("views.open"))
        await self.command(who, "/env", "request")
        opened: list[RecordedCall] = await self.slack.state.until(
            lambda calls: [c for c in calls if c.method == "views.open" and c.response is not None][
                seen:
            ],
            timeout=15,
        )
        view = dict(opened[0].response["view"])  # type: ignore[index]
        values = {
            "template": {
                "value": {"type": "static_select", "selected_option": {"value": "web-preview"}}
            },
            "name": {"value": {"type": "plain_text_input", "value": name}},
            "size": {"value": {"type": "static_select", "selected_option": {"value": "S"}}},
            "ttl": {"value": {"type": "plain_text_input", "value": "1d"}},
            "purpose": {"value": {"type": "plain_text_input", "value": "fault suite"}},
        }
        reply = await self._send(view_submission(who, view, values))
        assert reply.get("response_action") != "errors", reply

    async def press(
        self,
        who: SlackIdentity,
        action_id: str,
        value: str,
        *,
        block_id: str = "b",
        ts: str = "1790000000.000100",
    ) -> str:
        url = self.slack.new_response_url()
        await self._send(
            block_actions(
                who,
                {"action_id": action_id, "block_id": block_id, "value": value},
                response_url=url,
                message={"ts": ts},
                channel_id=who.channel_id,
            )
        )
        return url.rsplit("/", 1)[-1]

    async def confirm_button(self, token: str, action_id: str) -> dict[str, Any]:
        answer = await self.answer(token)
        for block in answer.args.get("blocks") or []:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == action_id:
                    return dict(element)
        raise AssertionError(f"no {action_id} button in {answer.args}")
