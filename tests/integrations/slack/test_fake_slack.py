"""The fake Slack Web API itself: Slack-shaped answers, state, recording, faults, queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack, start_fake_slack
from tests.fixtures.slack import BOT_TOKEN

CHANNEL = "C0PAYMENTS"
MODAL = {
    "type": "modal",
    "callback_id": "env.request",
    "title": {"type": "plain_text", "text": "Request"},
    "submit": {"type": "plain_text", "text": "Go"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Pick a size"}}],
}


async def _error(call: Any) -> str:
    with pytest.raises(SlackApiError) as failure:
        await call
    return str(failure.value.response["error"])


async def _raw_post(url: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as session, session.post(url, **kwargs) as response:
        return response.status, dict(response.headers), await response.json(content_type=None)


# --- auth and recording ----------------------------------------------------------------------


async def test_missing_or_wrong_tokens_are_invalid_auth(fake_slack: RunningFakeSlack) -> None:
    assert await _error(AsyncWebClient(base_url=fake_slack.api_url).auth_test()) == "invalid_auth"
    wrong = AsyncWebClient(token="xoxb-not-it", base_url=fake_slack.api_url)
    assert await _error(wrong.chat_postMessage(channel=CHANNEL, text="hi")) == "invalid_auth"
    status, _, body = await _raw_post(
        fake_slack.api_url + "chat.postMessage",
        data={"token": BOT_TOKEN, "channel": CHANNEL, "text": "hi"},
    )
    assert (status, body["ok"]) == (200, True), "a token in the form body works as in Slack"

    calls = fake_slack.calls()
    assert [c.auth for c in calls] == ["missing", "invalid", "token"]
    assert fake_slack.messages_in(CHANNEL) != {}
    for call in calls:
        assert "token" not in call.args
        assert BOT_TOKEN not in repr(call) and "xoxb-not-it" not in repr(call)


async def test_calls_are_numbered_timed_and_keep_their_answers(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    before = time.time()
    await slack_web_client.auth_test()
    await slack_web_client.chat_postMessage(channel=CHANNEL, text="one")
    first, second = fake_slack.calls()
    assert second.seq == first.seq + 1 and second.at >= first.at
    assert before <= first.received_at <= time.time()
    assert first.auth == "bearer" and first.response is not None
    assert first.response["user_id"] == "U0FORGEBOT" and first.response["team_id"] == "T0SANDBOX"
    assert second.channel == CHANNEL and second.ok


# --- messages --------------------------------------------------------------------------------


async def test_messages_keep_their_latest_content(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    posted = await slack_web_client.chat_postMessage(channel=CHANNEL, text="deploying")
    assert posted["channel"] == CHANNEL and posted["message"]["text"] == "deploying"
    ts = posted["ts"]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*done*"}}]

    updated = await slack_web_client.chat_update(channel=CHANNEL, ts=ts, text="done", blocks=blocks)

    assert updated["ts"] == ts and updated["text"] == "done"
    assert fake_slack.messages_in(CHANNEL)[ts]["blocks"] == blocks
    assert await _error(slack_web_client.chat_update(channel=CHANNEL, ts="1.000001", text="x")) == (
        "message_not_found"
    )
    await slack_web_client.chat_delete(channel=CHANNEL, ts=ts)
    assert fake_slack.messages_in(CHANNEL) == {}
    with pytest.warns(UserWarning, match="`text` argument is missing"):
        assert await _error(slack_web_client.chat_postMessage(channel=CHANNEL)) == "no_text"


async def test_timestamps_are_unique_and_increasing(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    stamps = [
        (await slack_web_client.chat_postMessage(channel=CHANNEL, text=str(n)))["ts"]
        for n in range(20)
    ]
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 20
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


async def test_ephemeral_and_dm_channels(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    reply = await slack_web_client.chat_postEphemeral(
        channel=CHANNEL, user="U0DEVELOPER", text="psst"
    )
    assert reply["message_ts"]
    opened = await slack_web_client.conversations_open(users=["U0DEVELOPER"])
    assert opened["channel"]["id"] == "D0DEVELOPER"
    group = await slack_web_client.conversations_open(users=["U0DEVELOPER", "U0ONCALL"])
    again = await slack_web_client.conversations_open(users="U0ONCALL,U0DEVELOPER")
    assert group["channel"]["id"] == again["channel"]["id"] and group["channel"]["id"].startswith(
        "G"
    )


# --- views -----------------------------------------------------------------------------------


async def test_views_get_ids_hashes_and_keep_their_id_on_update(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    opened = (await slack_web_client.views_open(trigger_id="1.2.abc", view=MODAL))["view"]
    assert (
        opened["id"].startswith("V") and opened["hash"] and opened["callback_id"] == "env.request"
    )
    assert opened["blocks"] == MODAL["blocks"] and opened["state"] == {"values": {}}

    changed = {**MODAL, "title": {"type": "plain_text", "text": "Request (2)"}}
    updated = (
        await slack_web_client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)
    )["view"]

    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert updated["title"]["text"] == "Request (2)"
    stale = slack_web_client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)
    assert await _error(stale) == "hash_conflict"
    assert await _error(slack_web_client.views_update(view_id="V404", view=changed)) == "not_found"
    assert (
        await _error(slack_web_client.views_open(trigger_id="", view=MODAL)) == "invalid_trigger_id"
    )
    pushed = (await slack_web_client.views_push(trigger_id="1.3.abc", view=MODAL))["view"]
    assert pushed["id"] > opened["id"], "ids sort in creation order"


async def test_each_user_has_one_home_view(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    home = {"type": "home", "blocks": [{"type": "divider"}]}
    first = (await slack_web_client.views_publish(user_id="U0DEVELOPER", view=home))["view"]
    second = (await slack_web_client.views_publish(user_id="U0DEVELOPER", view=home))["view"]
    other = (await slack_web_client.views_publish(user_id="U0ONCALL", view=home))["view"]
    assert first["id"] == second["id"] != other["id"]
    assert await _error(slack_web_client.views_publish(user_id="U0DEVELOPER", view=MODAL)) == (
        "invalid_arguments"
    )


# --- directory -------------------------------------------------------------------------------


async def test_usergroups_and_users_come_from_configuration(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    members = await slack_web_client.usergroups_users_list(usergroup="S0PAYMENTS")
    assert members["users"] == ["U0DEVELOPER", "U0ONCALL"]
    assert (
        await _error(slack_web_client.usergroups_users_list(usergroup="S0NOPE"))
        == "no_such_subteam"
    )

    user = (await slack_web_client.users_info(user="U0ONCALL"))["user"]
    assert (user["tz"], user["tz_offset"], user["real_name"]) == (
        "Asia/Kolkata",
        19800,
        "Omar Oncall",
    )
    assert await _error(slack_web_client.users_info(user="U0NOBODY")) == "user_not_found"


def test_reset_restores_the_configured_directory(fake_slack: RunningFakeSlack) -> None:
    fake_slack.set_usergroup("S0PAYMENTS", [])
    fake_slack.set_usergroup("S0NEW", ["U1"])
    fake_slack.reset()
    assert fake_slack.state.usergroups == {"S0PAYMENTS": ["U0DEVELOPER", "U0ONCALL"]}


# --- response_url ----------------------------------------------------------------------------


async def test_bolt_respond_posts_to_a_response_url(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    ts = (await slack_web_client.chat_postMessage(channel=CHANNEL, text="Approve?"))["ts"]
    respond = AsyncRespond(response_url=fake_slack.new_response_url(CHANNEL, ts))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Approved by <@U0PLATFORM>"}}]

    replaced = await respond(text="Approved", blocks=blocks, replace_original=True)
    await respond(text="Deploying now", response_type="in_channel")
    await respond(text="Only you see this", response_type="ephemeral")

    assert replaced.status_code == 200
    posts = fake_slack.calls("response_url")
    assert [(p.args.get("response_type"), p.args.get("replace_original")) for p in posts] == [
        (None, True),
        ("in_channel", None),
        ("ephemeral", None),
    ]
    assert posts[0].args["blocks"] == blocks and posts[0].target
    messages = list(fake_slack.messages_in(CHANNEL).values())
    assert [m["text"] for m in messages] == ["Approved", "Deploying now"]

    await respond(delete_original=True)
    assert [m["text"] for m in fake_slack.messages_in(CHANNEL).values()] == ["Deploying now"]


async def test_response_urls_expire_after_five_uses_and_unknown_ones_fail(
    fake_slack: RunningFakeSlack,
) -> None:
    respond = AsyncRespond(response_url=fake_slack.new_response_url())
    statuses = [(await respond(text=f"update {n}")).status_code for n in range(6)]
    assert statuses == [200] * 5 + [404]
    assert fake_slack.calls("response_url")[-1].error == "used_url"
    unknown = AsyncRespond(response_url=fake_slack.url + "/response/not-minted")
    assert (await unknown(text="hi")).status_code == 404


# --- Block Kit checks ------------------------------------------------------------------------


@pytest.fixture
def private_fake() -> Iterator[RunningFakeSlack]:
    """A fake of its own, for tests that send broken payloads on purpose."""
    fake = start_fake_slack(BOT_TOKEN)
    yield fake
    fake.stop()


async def test_payloads_breaking_block_kit_limits_are_recorded(
    private_fake: RunningFakeSlack,
) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=private_fake.api_url)
    private_fake.assert_no_violations()
    too_long = [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]
    await client.chat_postMessage(channel=CHANNEL, text="x", blocks=too_long)
    await client.views_open(
        trigger_id="t", view={**MODAL, "title": {"type": "plain_text", "text": "t" * 25}}
    )
    await AsyncRespond(response_url=private_fake.new_response_url())(text="r", blocks=too_long)
    await client.chat_postMessage(channel=CHANNEL, text="w" * 4001)  # a warning, not an error

    assert [c.method for c in private_fake.calls() if c.errors] == [
        "chat.postMessage",
        "views.open",
        "response_url",
    ]
    with pytest.raises(
        AssertionError, match=r"(?s)chat.postMessage#\d+: message.blocks\[0\].text.*views.open"
    ):
        private_fake.assert_no_violations()
    assert private_fake.calls()[-1].violations[0].severity == "warning"


# --- faults ----------------------------------------------------------------------------------


async def test_injected_faults_hit_only_the_method_asked_for(fake_slack: RunningFakeSlack) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url, retry_handlers=[])
    fake_slack.rate_limit_next(1, method="chat.update", retry_after=7)
    fake_slack.rate_limit_next(1, method="views.publish", retry_after=3, as_http_date=True)
    fake_slack.fail_next(1, method="users.info", status=502)

    await client.chat_postMessage(channel=CHANNEL, text="unaffected")
    with pytest.raises(SlackApiError) as limited:
        await client.chat_update(channel=CHANNEL, ts="1.1", text="x")
    with pytest.raises(SlackApiError) as dated:
        await client.views_publish(user_id="U1", view={"type": "home", "blocks": []})
    with pytest.raises(SlackApiError) as failed:
        await client.users_info(user="U0DEVELOPER")

    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    when = parsedate_to_datetime(dated.value.response.headers["Retry-After"]).timestamp()
    assert 3 <= when - time.time() <= 4.5
    assert failed.value.response.status_code == 502
    assert [c.fault for c in fake_slack.calls(include_faults=True)] == [
        None,
        "rate_limited",
        "rate_limited",
        "server_error",
    ]
    assert len(fake_slack.calls()) == 1, "faulted calls are hidden unless asked for"


async def test_the_channel_rate_limit_answers_429_within_a_second(
    fake_slack: RunningFakeSlack,
) -> None:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url, retry_handlers=[])
    fake_slack.limit_channel_rate(min_interval=1.0)

    await client.chat_postMessage(channel=CHANNEL, text="first")
    with pytest.raises(SlackApiError) as limited:
        await client.chat_postMessage(channel=CHANNEL, text="too soon")
    await client.chat_postMessage(channel="C0OTHER", text="another channel is fine")

    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "1"
    assert [c.fault for c in fake_slack.calls(include_faults=True)] == [
        None,
        "channel_rate_limited",
        None,
    ]
    fake_slack.clear_faults()
    await client.chat_postMessage(channel=CHANNEL, text="limit lifted")


# --- queries from other threads --------------------------------------------------------------


async def test_listeners_see_calls_as_they_arrive(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    seen: list[tuple[str, str]] = []
    unsubscribe = fake_slack.subscribe(
        lambda call: seen.append((call.method, threading.current_thread().name))
    )

    await slack_web_client.chat_postMessage(channel=CHANNEL, text="hello")
    unsubscribe()
    await slack_web_client.chat_postMessage(channel=CHANNEL, text="unseen")

    assert seen == [("chat.postMessage", "sandbox-server")]


async def test_a_failing_listener_does_not_break_the_fake(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    def broken(call: RecordedCall) -> None:
        raise RuntimeError("listener bug")

    fake_slack.subscribe(broken)
    assert (await slack_web_client.chat_postMessage(channel=CHANNEL, text="still works"))["ok"]


async def test_wait_for_works_from_another_thread(
    fake_slack: RunningFakeSlack, slack_web_client: AsyncWebClient
) -> None:
    found: list[RecordedCall] = []

    def waiter() -> None:
        found.extend(
            fake_slack.wait_for(lambda calls: [c for c in calls if c.method == "views.publish"], 5)
        )

    thread = threading.Thread(target=waiter)
    thread.start()
    await slack_web_client.views_publish(user_id="U0DEVELOPER", view={"type": "home", "blocks": []})
    thread.join(5)
    assert [c.method for c in found] == ["views.publish"]
    published = await fake_slack.until_call("views.publish", user_id="U0DEVELOPER")
    assert published == found


def test_wait_for_gives_up_at_its_deadline(fake_slack: RunningFakeSlack) -> None:
    with pytest.raises(TimeoutError):
        fake_slack.wait_for(lambda calls: calls, timeout=0.05)
