"""Outgoing Slack calls against the loopback fake: retries, pacing and coalescing."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from integrations.sandbox.slack_api import Fault, RunningFakeSlack
from integrations.slack.blockkit import check_message, escape, paginate_blocks, truncate
from integrations.slack.web import SlackOutbox, build_web_client, parse_retry_after
from tests.fixtures.slack import BOT_TOKEN


def _client(fake: RunningFakeSlack) -> SlackOutbox:
    return SlackOutbox(build_web_client(BOT_TOKEN, base_url=fake.api_url), min_interval=0.2)


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=2), usegmt=True), now.timestamp())
        == 2.0
    )
    assert parse_retry_after("garbage") == 1.0
    assert parse_retry_after("100000") == 60.0


@pytest.mark.parametrize("retry_after", ["1", "HTTP-DATE"])
async def test_429_is_retried_after_retry_after(
    fake_slack: RunningFakeSlack, retry_after: str
) -> None:
    if retry_after == "HTTP-DATE":
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=1), usegmt=True)
    fake_slack.state.faults.append(
        Fault(status=429, count=1, method="chat.postMessage", retry_after=retry_after)
    )
    outbox = _client(fake_slack)
    ts = await outbox.post("C0PAYMENTS", "deploy finished")
    assert ts
    delivered = fake_slack.state.find("chat.postMessage")
    assert len(delivered) == 1, "delivered exactly once after the retry"


async def test_server_errors_and_drops_are_retried(fake_slack: RunningFakeSlack) -> None:
    fake_slack.state.faults += [
        Fault(status=500, count=2, method="chat.postMessage"),
        Fault(status=0, count=1, method="chat.postMessage", drop=True),
    ]
    outbox = _client(fake_slack)
    assert await outbox.post("C0PAYMENTS", "hello")
    assert len(fake_slack.state.find("chat.postMessage")) == 1


async def test_posts_to_one_channel_are_paced(fake_slack: RunningFakeSlack) -> None:
    outbox = _client(fake_slack)
    await asyncio.gather(
        *[outbox.post("C0PAYMENTS", f"m{i}") for i in range(4)], outbox.post("C0OTHER", "x")
    )
    times = [c.at for c in fake_slack.state.find("chat.postMessage", channel="C0PAYMENTS")]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.19, gaps


async def test_updates_to_one_message_coalesce(fake_slack: RunningFakeSlack) -> None:
    outbox = _client(fake_slack)
    ts = await outbox.post("C0PAYMENTS", "progress 0%")
    for percent in range(1, 21):
        await outbox.update("C0PAYMENTS", ts, f"progress {percent * 5}%")
    await outbox.flush()
    updates = fake_slack.state.find("chat.update")
    assert 1 <= len(updates) <= 3
    assert updates[-1].args["text"] == "progress 100%"
    assert fake_slack.state.messages[("C0PAYMENTS", ts)]["text"] == "progress 100%"


async def test_long_block_lists_are_paginated(fake_slack: RunningFakeSlack) -> None:
    outbox = _client(fake_slack)
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"env {i}"}} for i in range(120)
    ]
    await outbox.post("C0PLATFORM", "environments", blocks)
    posts = fake_slack.state.find("chat.postMessage", channel="C0PLATFORM")
    assert [len(p.args["blocks"]) for p in posts] == [50, 50, 20]


def test_blockkit_limits() -> None:
    long_section = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    assert check_message(long_section)
    assert not check_message([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3000}}])
    dup = [
        {
            "type": "actions",
            "elements": [
                {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "A"}},
                {
                    "type": "button",
                    "action_id": "a",
                    "text": {"type": "plain_text", "text": "B" * 76},
                },
            ],
        }
    ]
    problems = [str(v) for v in check_message(dup)]
    assert any("not unique" in p for p in problems) and any("button text" in p for p in problems)
    assert check_message([{"type": "divider"}] * 51)
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert truncate("abcdef", 4) == "abc…"
    assert paginate_blocks([]) == [[]]
