"""/metrics carries what the dashboard and alerts need, and logs are JSON lines whose request id
is the reference a user is given."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import aiohttp
import pytest
from slack_bolt.context.respond.async_respond import AsyncRespond

from core.logs import configure_logging
from core.router import Ack, Invocation, Subcommand
from integrations.kubernetes.gateway import KubeGateway
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_payloads import slash_command
from tests.fixtures.slack import DEVELOPER, RunningBot


async def _metrics(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as response:
        assert response.status == 200
        return await response.text()


def _value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_cover_commands_acks_slack_dependencies_and_the_scheduler(
    running_bot: RunningBot, kube: KubeGateway, fake_kube: FakeKube
) -> None:
    before = await _metrics(running_bot.url)
    for text in ("help", "no-such-thing"):
        reply = await running_bot.client.send(
            slash_command(DEVELOPER, "/forge", text, running_bot.slack.new_response_url())
        )
        assert reply.status == 200
    ctx = running_bot.runtime.ctx
    assert ctx is not None
    # Handlers count themselves when they finish, which is after the ack that answered above.
    assert await ctx.boundary.drain(10), "the two commands' handlers finished"
    await ctx.slack.post("C0PAYMENTS", "hello")
    await kube.list_namespaces("dev-cluster", "")
    fake_kube.faults.errors_500 = 1
    with pytest.raises(Exception):  # noqa: B017 - the gateway's domain error
        await kube.list_namespaces("dev-cluster", "")
    after = await _metrics(running_bot.url)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("forgebot_commands_total", command="help", outcome="ok") == 1
    assert grew("forgebot_commands_total", command="unknown", outcome="invalid") == 1
    assert grew("forgebot_ack_seconds_count", kind="command") == 2
    assert grew("forgebot_slack_api_calls_total", method="chat.postMessage", outcome="ok") == 1
    assert grew("forgebot_dependency_seconds_count", system="kubernetes", operation="list") == 2
    errors = [
        line
        for line in after.splitlines()
        if line.startswith("forgebot_dependency_seconds_count{")
        and 'system="kubernetes"' in line
        and 'outcome="ok"' not in line
    ]
    assert errors, "a failed Kubernetes call is counted with its outcome"
    for name in (
        "forgebot_scheduler_leader",
        "forgebot_handlers_in_flight",
        "forgebot_slack_requests_total",
    ):
        assert name in after


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


async def test_logs_are_json_with_the_request_id_the_user_is_given(
    running_bot: RunningBot, json_logs: io.StringIO
) -> None:
    ctx = running_bot.runtime.ctx
    assert ctx is not None

    async def broken(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        logging.getLogger("commands.test").info("working on it")
        raise RuntimeError("xoxb-1234-secret-token leaked into an error")

    ctx.router.add(Subcommand("broken", "test only", ["broken"], broken))
    reply = await running_bot.client.send(
        slash_command(DEVELOPER, "/forge", "broken", running_bot.slack.new_response_url())
    )
    reference = re.search(r"Reference `(\w+)`", reply.body)
    assert reference is not None, reply.body
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line.strip()]
    mine = [line for line in lines if line.get("request_id") == reference.group(1)]
    assert {line["msg"] for line in mine} >= {"working on it", "broken failed"}
    failure = next(line for line in mine if line["msg"] == "broken failed")
    assert failure["level"] == "error" and "RuntimeError" in failure["exception"]
    assert "xoxb-1234" not in json_logs.getvalue(), "tokens are redacted"
