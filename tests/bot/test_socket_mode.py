"""Socket Mode end to end: the real bot connected to the loopback Socket Mode server of the fake
Slack (hello, envelopes with envelope_id acks, disconnect and refresh), like HTTP mode's tests."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator

import pytest

from bot.runtime import Runtime
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.slack_api import RunningFakeSlack
from integrations.sandbox.slack_payloads import app_home_opened, slash_command, view_submission
from integrations.sandbox.socket_mode import APP_TOKEN
from integrations.slack.socket_mode import AppTokenRefused, Backoff, SocketModeClient
from tests.fixtures.slack import DEVELOPER


@pytest.fixture
async def socket_bot(
    bot_settings: Settings, catalog: Catalog, fake_slack: RunningFakeSlack
) -> AsyncIterator[Runtime]:
    """The bot in Socket Mode (its HTTP server serves only health and metrics here)."""
    settings = bot_settings.model_copy(update={"slack_app_token": _secret(APP_TOKEN)})
    runtime = Runtime(settings, catalog, run_scheduler=False)
    await runtime.start()
    runtime.start_socket_mode()
    assert runtime.socket_mode is not None
    await fake_slack.socket_mode.until_connected()
    await asyncio.wait_for(runtime.socket_mode.connected.wait(), 10)
    yield runtime
    await runtime.stop()


def _secret(value: str) -> object:
    from pydantic import SecretStr

    return SecretStr(value)


async def test_a_slash_command_is_answered_in_its_ack(
    socket_bot: Runtime, fake_slack: RunningFakeSlack
) -> None:
    sm = fake_slack.socket_mode
    envelope = sm.send_http_body(
        slash_command(DEVELOPER, "/forge", "help", fake_slack.new_response_url())
    )
    ack = await sm.until_ack(envelope)
    assert ack["envelope_id"] == envelope
    assert ack["payload"]["response_type"] == "ephemeral"
    assert any("help" in json.dumps(block) for block in ack["payload"]["blocks"])
    assert sm.protocol_errors == []


async def test_an_interactive_payload_is_handled_and_answered(
    socket_bot: Runtime, fake_slack: RunningFakeSlack
) -> None:
    sm = fake_slack.socket_mode
    opened = sm.send_http_body(
        slash_command(DEVELOPER, "/env", "request", fake_slack.new_response_url())
    )
    await sm.until_ack(opened)
    call = await fake_slack.until_call("views.open", timeout=10)
    view = dict(call[-1].response["view"])
    values = {
        "template": {
            "value": {"type": "static_select", "selected_option": {"value": "web-preview"}}
        },
        "name": {"value": {"type": "plain_text_input", "value": "Not A Name!"}},
        "size": {"value": {"type": "static_select", "selected_option": {"value": "S"}}},
        "ttl": {"value": {"type": "plain_text_input", "value": "1d"}},
        "purpose": {"value": {"type": "plain_text_input", "value": ""}},
    }
    submitted = sm.send_http_body(view_submission(DEVELOPER, view, values))
    ack = await sm.until_ack(submitted)
    assert ack["payload"]["response_action"] == "errors"
    assert "name" in ack["payload"]["errors"]


async def test_an_event_is_acknowledged_and_handled(
    socket_bot: Runtime, fake_slack: RunningFakeSlack
) -> None:
    sm = fake_slack.socket_mode
    envelope = sm.send_http_body(app_home_opened(DEVELOPER, event_id="Ev0SOCKET"))
    ack = await sm.until_ack(envelope)
    assert ack == {"envelope_id": envelope}, "events are acknowledged without a payload"
    await fake_slack.until_call("views.publish", timeout=10)


@pytest.mark.parametrize("reason", ["refresh_requested", "warning"])
async def test_disconnect_reconnects_without_losing_an_envelope(
    socket_bot: Runtime, fake_slack: RunningFakeSlack, reason: str
) -> None:
    sm = fake_slack.socket_mode

    def help_body() -> bytes:
        return slash_command(DEVELOPER, "/forge", "help", fake_slack.new_response_url())

    before = sm.send_http_body(help_body())
    old = sm.disconnect(reason, close_after=3.0)
    # Slack may still deliver on the connection it asked us to leave, until it closes it.
    during = sm.send_http_body(help_body(), on=old)
    newer = await sm.until_connected(count=2)
    assert newer.number != old
    after = sm.send_http_body(help_body())

    for envelope in (before, during, after):
        ack = await sm.until_ack(envelope)
        assert ack["payload"]["response_type"] == "ephemeral"
    with sm.lock:
        acked_on = {e: sm.envelopes[e].ack_connection for e in (before, during, after)}
    assert acked_on == {before: old, during: old, after: newer.number}
    assert sm.protocol_errors == []
    # The old connection is closed (by Slack here, at the latest), the new one stays.
    await sm.until(lambda: next(c for c in sm.connections if c.number == old).closed)
    assert not newer.closed


async def test_a_dropped_connection_is_reopened(
    socket_bot: Runtime, fake_slack: RunningFakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    sm = fake_slack.socket_mode
    caplog.set_level(logging.INFO, "integrations.slack.socket_mode")
    sm.close_all()
    await sm.until_connected(count=2)
    envelope = sm.send_http_body(
        slash_command(DEVELOPER, "/forge", "help", fake_slack.new_response_url())
    )
    assert "payload" in await sm.until_ack(envelope)
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"


async def test_a_refused_app_token_stops_after_one_attempt_with_one_clear_line(
    fake_slack: RunningFakeSlack,
) -> None:
    async def never(*_: object) -> None:
        raise AssertionError("nothing may be dispatched")

    client = SocketModeClient("xapp-wrong", fake_slack.api_url, never, backoff=Backoff(0.01, 0.02))
    task = client.start()
    with pytest.raises(AppTokenRefused) as refused:
        await asyncio.wait_for(task, 10)
    assert "invalid_auth" in str(refused.value) and "SLACK_APP_TOKEN" in str(refused.value)
    assert "xapp-wrong" not in str(refused.value)
    assert "\n" not in str(refused.value)
    assert fake_slack.socket_mode.opens == 1, "no hot loop on a token Slack refuses"
    await client.close()


async def test_close_stops_a_client_that_is_backing_off(
    unused_tcp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def never(*_: object) -> None:
        raise AssertionError("nothing may be dispatched")

    caplog.set_level(logging.WARNING, "integrations.slack.socket_mode")
    client = SocketModeClient(
        "xapp-x", f"http://127.0.0.1:{unused_tcp_port}/api/", never, backoff=Backoff(30, 60)
    )
    task = client.start()
    for _ in range(200):  # the first attempt fails at once (nothing listens there)
        if any("retrying in" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    [line] = [r.getMessage() for r in caplog.records]
    assert "cannot connect" in line and "attempt 1" in line and not caplog.records[0].exc_info
    # Now it sleeps 15-30 s; close() ends it at once.
    await asyncio.wait_for(client.close(), 2)
    assert task.done()


def test_backoff_grows_exponentially_with_jitter_up_to_a_cap() -> None:
    backoff = Backoff(base=1.0, cap=60.0)
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        delays = {backoff.delay(attempt, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1, "jittered"
