"""PostgreSQL goes away under a running bot: readiness fails, users are told, nothing crashes,
and everything works again when the database returns."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.runtime import Runtime
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import SignedSlackClient, app_home_opened, slash_command
from tests.fixtures.slack import DEVELOPER, SIGNING_SECRET
from tests.tcp_proxy import TcpProxy


@pytest.fixture
async def proxied_bot(
    postgres_url: str, bot_settings: Settings, catalog: Catalog
) -> AsyncIterator[tuple[Runtime, TcpProxy]]:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    runtime = Runtime(
        bot_settings.model_copy(update={"database_url": url}), catalog, run_scheduler=False
    )
    await runtime.start()
    yield runtime, proxy
    await proxy.restore() if proxy._server is None else None
    await runtime.stop()


async def _ready(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url + "/readyz") as response:
        return response.status


async def _eventually(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_outage_is_reported_and_recovered(
    proxied_bot: tuple[Runtime, TcpProxy], fake_slack: RunningFakeSlack
) -> None:
    runtime, proxy = proxied_bot
    client = SignedSlackClient(runtime.url, SIGNING_SECRET)
    assert await _ready(runtime.url) == 200

    await proxy.cut()
    assert await _ready(runtime.url) == 503
    # Help needs no database and still answers; its audit entry is logged instead of stored.
    help_reply = await client.send(
        slash_command(DEVELOPER, "/forge", "help", fake_slack.new_response_url())
    )
    assert help_reply.status == 200 and help_reply.json()["response_type"] == "ephemeral"
    # An event that needs the database is acked and does nothing half-done.
    event = await client.send(app_home_opened(DEVELOPER, event_id="Ev0OUTAGE"))
    assert event.status == 200
    await asyncio.sleep(0.3)
    assert fake_slack.state.find("views.publish") == []

    await proxy.restore()
    await _eventually(lambda: _status_is(runtime.url, 200))
    again = await client.send(app_home_opened(DEVELOPER, event_id="Ev0AFTER"))
    assert again.status == 200
    await fake_slack.state.until(lambda calls: [c for c in calls if c.method == "views.publish"])
    await client.close()


async def _status_is(url: str, status: int) -> bool:
    return await _ready(url) == status
