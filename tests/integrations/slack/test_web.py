"""The outgoing gateway against the loopback fake: retries, pacing, coalescing, files, logs."""

from __future__ import annotations

import asyncio
import itertools
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack
from integrations.slack.retry import ExponentialBackoff, parse_retry_after
from integrations.slack.web import SlackGateway, SlackOutbox, build_web_client
from tests.fixtures.slack import BOT_TOKEN

CHANNEL = "C0PAYMENTS"


def _gaps(calls: list[RecordedCall]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(calls)]


def _outcomes(calls: list[RecordedCall]) -> list[str]:
    return [c.fault or c.error or "ok" for c in calls]


# --- Retry-After ---------------------------------------------------------------------------


NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 2 ", 2.0),
        ("0.5", 0.5),
        ("0", 0.0),
        ("-4", 0.0),
        (format_datetime(NOW + timedelta(seconds=7), usegmt=True), 7.0),
        ("Tue, 24 Nov 2026 12:00:05", 5.0),  # no zone: HTTP dates are GMT
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),  # already past
        ("3600", 60.0),  # capped
        (None, 1.0),
        ("", 1.0),
        ("soon", 1.0),
        ("nan", 1.0),
    ],
)
def test_retry_after_is_read_as_seconds_or_http_date(value: str | None, seconds: float) -> None:
    assert parse_retry_after(value, NOW.timestamp()) == pytest.approx(seconds)


def test_backoff_grows_exponentially_within_its_cap_and_jitters() -> None:
    low = ExponentialBackoff(base=0.5, cap=4.0, rng=lambda: 0.0)
    high = ExponentialBackoff(base=0.5, cap=4.0, rng=lambda: 0.999)
    assert [low.calculate_sleep_duration(n) for n in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert all(
        low.calculate_sleep_duration(n) < high.calculate_sleep_duration(n) <= 4.0 for n in range(6)
    )


# --- retries through the real client against the fake --------------------------------------


@pytest.mark.parametrize("as_http_date", [False, True], ids=["seconds", "http-date"])
async def test_429_is_retried_after_retry_after(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient, as_http_date: bool
) -> None:
    fake_slack.rate_limit_next(
        1, method="chat.postMessage", retry_after=1, as_http_date=as_http_date
    )

    response = await slack_web_client.chat_postMessage(channel=CHANNEL, text="deploy finished")

    assert response["ok"] and response["ts"]
    attempts = fake_slack.calls("chat.postMessage", include_faults=True)
    assert _outcomes(attempts) == ["rate_limited", "ok"]
    # The retry waited for Retry-After (an HTTP-date has one-second resolution, rounded up).
    assert _gaps(attempts)[0] >= 0.95
    [message] = fake_slack.messages_in(CHANNEL).values()
    assert message["text"] == "deploy finished"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried_with_backoff(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient, status: int
) -> None:
    fake_slack.fail_next(2, method="chat.postMessage", status=status)

    response = await slack_web_client.chat_postMessage(channel=CHANNEL, text="hello")

    assert response["ok"]
    attempts = fake_slack.calls("chat.postMessage", include_faults=True)
    assert _outcomes(attempts) == ["server_error", "server_error", "ok"]
    assert len(fake_slack.messages_in(CHANNEL)) == 1


async def test_dropped_connections_are_retried(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    fake_slack.drop_next(2, method="views.publish")

    await slack_web_client.views_publish(
        user_id="U0DEVELOPER", view={"type": "home", "blocks": [{"type": "divider"}]}
    )

    attempts = fake_slack.calls("views.publish", include_faults=True)
    assert _outcomes(attempts) == ["dropped", "dropped", "ok"]


async def test_retries_are_bounded(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    fake_slack.fail_next(50, method="chat.postMessage", status=503)

    with pytest.raises(SlackApiError) as failure:
        await slack_web_client.chat_postMessage(channel=CHANNEL, text="never delivered")

    assert failure.value.response.status_code == 503
    attempts = fake_slack.calls("chat.postMessage", include_faults=True)
    assert len(attempts) == 5, "one attempt and four retries"
    assert fake_slack.messages_in(CHANNEL) == {}


async def test_a_wrong_token_is_not_retried(fake_slack: RunningFakeSlack) -> None:
    client = build_web_client("xoxb-wrong", fake_slack.api_url)
    with pytest.raises(SlackApiError) as failure:
        await client.auth_test()
    assert failure.value.response["error"] == "invalid_auth"
    assert len(fake_slack.calls("auth.test")) == 1


# --- the outbox ----------------------------------------------------------------------------


async def test_the_outbox_is_a_slack_gateway(slack_web_client: AsyncWebClient) -> None:
    gateway: SlackGateway = SlackOutbox(slack_web_client)
    assert isinstance(gateway, SlackOutbox)


async def test_posts_to_one_channel_are_paced(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    fake_slack.limit_channel_rate(1.0)  # Slack's one message per second per channel
    outbox = SlackOutbox(slack_web_client)

    timestamps = await asyncio.gather(
        *[outbox.post(CHANNEL, f"step {n}") for n in range(3)], outbox.post("C0OTHER", "elsewhere")
    )

    posts = fake_slack.calls("chat.postMessage", CHANNEL, include_faults=True)
    assert _outcomes(posts) == ["ok", "ok", "ok"], "the bot paced itself: Slack never said 429"
    assert min(_gaps(posts)) >= 1.0
    assert [p.args["text"] for p in posts] == ["step 0", "step 1", "step 2"], "in order"
    other = fake_slack.calls("chat.postMessage", "C0OTHER")[0]
    assert other.seq < posts[1].seq, "another channel does not wait for this one"
    assert len(set(timestamps)) == 4


async def test_a_burst_of_updates_becomes_one_update_with_the_latest_content(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    outbox = SlackOutbox(slack_web_client)
    ts = await outbox.post(CHANNEL, "rollout 0%")

    for percent in range(5, 101, 5):
        await outbox.update(CHANNEL, ts, f"rollout {percent}%")
    await outbox.flush()

    updates = fake_slack.calls("chat.update")
    assert [u.args["text"] for u in updates] == ["rollout 100%"]
    assert fake_slack.messages_in(CHANNEL)[ts]["text"] == "rollout 100%"


async def test_ten_updates_a_second_cost_at_most_one_update_a_second(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    fake_slack.limit_channel_rate(1.0, methods=("chat.postMessage", "chat.update"))
    outbox = SlackOutbox(slack_web_client)
    ts = await outbox.post(CHANNEL, "rollout 0/25 pods")

    for ready in range(1, 26):  # a rollout reporting progress at 10 Hz for 2.5 s
        await outbox.update(CHANNEL, ts, f"rollout {ready}/25 pods")
        await asyncio.sleep(0.1)
    await outbox.flush()

    sent = fake_slack.calls(channel=CHANNEL, include_faults=True)
    assert all(c.fault is None for c in sent), "never rate-limited"
    updates = [c for c in sent if c.method == "chat.update"]
    assert 1 <= len(updates) <= 4
    assert min(_gaps(sent)) >= 1.0
    assert fake_slack.messages_in(CHANNEL)[ts]["text"] == "rollout 25/25 pods"


async def test_a_failed_update_is_logged_without_its_content(
    fake_slack: RunningFakeSlack,
    slack_web_client: AsyncWebClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = SlackOutbox(slack_web_client)
    await outbox.update(CHANNEL, "1.000001", "secret rollout detail")
    await outbox.flush()

    assert fake_slack.calls("chat.update")[0].error == "message_not_found"
    assert "message_not_found" in caplog.text
    assert "secret rollout detail" not in caplog.text


async def test_long_block_lists_are_split_over_several_messages(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    outbox = SlackOutbox(slack_web_client, min_interval=0.0)
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"env {n}"}} for n in range(120)
    ]

    first_ts = await outbox.post("C0PLATFORM", "environments", blocks)

    posts = fake_slack.calls("chat.postMessage", "C0PLATFORM")
    assert [len(p.args["blocks"]) for p in posts] == [50, 50, 20]
    assert [p.args["text"] for p in posts] == [
        "environments",
        "environments (2/3)",
        "environments (3/3)",
    ]
    assert first_ts == posts[0].response["ts"]  # type: ignore[index]


async def test_an_update_with_too_many_blocks_still_fits_one_message(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    outbox = SlackOutbox(slack_web_client, min_interval=0.0)
    ts = await outbox.post(CHANNEL, "list")
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"row {n}"}} for n in range(70)
    ]

    await outbox.update(CHANNEL, ts, "list", blocks)
    await outbox.flush()

    sent = fake_slack.messages_in(CHANNEL)[ts]["blocks"]
    assert len(sent) == 50
    assert sent[-1]["elements"][0]["text"] == "… 21 more not shown"


async def test_dm_opens_the_conversation_once(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    outbox = SlackOutbox(slack_web_client, min_interval=0.0)

    first = await outbox.dm("U0DEVELOPER", "your environment is ready")
    second = await outbox.dm("U0DEVELOPER", "it expires tomorrow")

    assert first[0] == second[0] == "D0DEVELOPER"
    assert len(fake_slack.calls("conversations.open")) == 1
    texts = [m["text"] for m in fake_slack.messages_in("D0DEVELOPER").values()]
    assert texts == ["your environment is ready", "it expires tomorrow"]


async def test_ephemeral_messages_go_to_one_user(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    outbox = SlackOutbox(slack_web_client)
    await outbox.post_ephemeral(CHANNEL, "U0DEVELOPER", "only you can see this")
    [call] = fake_slack.calls("chat.postEphemeral", CHANNEL)
    assert call.args["user"] == "U0DEVELOPER" and call.ok
    assert fake_slack.messages_in(CHANNEL) == {}


async def test_files_are_uploaded_end_to_end_and_survive_a_dropped_upload(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    outbox = SlackOutbox(slack_web_client)
    report = b"service,cost\ncheckout,41.20\n" * 500
    fake_slack.drop_next(1, method="upload")

    file_id = await outbox.upload_file(
        "C0PLATFORM", "cost.csv", report, "Cost report", initial_comment="This week's costs"
    )

    assert fake_slack.uploaded(file_id) == report
    methods = [c.method for c in fake_slack.calls(include_faults=True)]
    assert methods == [
        "files.getUploadURLExternal",
        "upload",
        "upload",
        "files.completeUploadExternal",
    ]
    [shared] = fake_slack.messages_in("C0PLATFORM").values()
    assert shared["text"] == "This week's costs"
    assert shared["files"][0] == {
        "id": file_id,
        "name": "cost.csv",
        "title": "Cost report",
        "size": len(report),
        "user": "U0FORGEBOT",
        "channels": ["C0PLATFORM"],
    }


async def test_outcomes_are_reported_to_the_observer(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    seen: list[tuple[str, str]] = []
    outbox = SlackOutbox(
        slack_web_client, observe=lambda method, outcome: seen.append((method, outcome))
    )

    await outbox.post(CHANNEL, "hi")
    with pytest.raises(SlackApiError):
        await outbox.post("", "nowhere")

    assert seen == [("chat.postMessage", "ok"), ("chat.postMessage", "channel_not_found")]


async def test_no_token_and_no_message_body_reaches_the_logs(
    fake_slack: RunningFakeSlack,
    slack_web_client: AsyncWebClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_slack.rate_limit_next(1, retry_after=0)
    fake_slack.fail_next(1, status=500)
    outbox = SlackOutbox(slack_web_client)

    await outbox.post(
        CHANNEL,
        "PRIVATE-MESSAGE-TEXT",
        [{"type": "section", "text": {"type": "mrkdwn", "text": "PRIVATE-BLOCK"}}],
    )

    assert "retry" in caplog.text, "retries are logged (method and reason only)"
    for secret in (BOT_TOKEN, "PRIVATE-MESSAGE-TEXT", "PRIVATE-BLOCK"):
        assert secret not in caplog.text
    slack_web_client.logger.setLevel(logging.DEBUG)
    assert slack_web_client.logger.level == logging.INFO, (
        "the SDK's logger cannot be made to log bodies"
    )
