"""Slack's v0 request signatures: the verifier on its own, and signed requests over loopback."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from integrations.sandbox.server_thread import RunningServer, serve_in_thread
from integrations.sandbox.slack_payloads import SignedSlackClient, SlackIdentity, slash_command
from integrations.slack.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
    signed_headers,
    verify_request,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BODY = b"token=x&team_id=T1&command=%2Fforge&text=help"
NOW = 1_790_000_000


def _headers(stamp: str, signature: str | None = None) -> dict[str, str]:
    return {
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: signature or compute_signature(SECRET, stamp, BODY),
    }


def test_known_vector() -> None:
    # Slack's documented example body and secret produce this signature.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert compute_signature(SECRET, "1531420618", body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


@pytest.mark.parametrize("skew", [0, 299, -299, 300, -300])
def test_inside_the_window(skew: int) -> None:
    assert verify_request(SECRET, _headers(str(NOW + skew)), BODY, NOW).ok


@pytest.mark.parametrize("skew", [301, -301, 86400, -86400])
def test_outside_the_window_both_ways(skew: int) -> None:
    result = verify_request(SECRET, _headers(str(NOW + skew)), BODY, NOW)
    assert not result.ok and result.reason == "stale or future timestamp"


def test_header_names_are_case_insensitive() -> None:
    lowered = {k.lower(): v for k, v in _headers(str(NOW)).items()}
    assert verify_request(SECRET, lowered, BODY, NOW).ok
    assert signed_headers(SECRET, str(NOW), BODY) == _headers(str(NOW))


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing signature headers"),
        ({TIMESTAMP_HEADER: str(NOW)}, "missing signature headers"),
        ({SIGNATURE_HEADER: "v0=" + "a" * 64}, "missing signature headers"),
        ({TIMESTAMP_HEADER: "", SIGNATURE_HEADER: "v0=" + "a" * 64}, "missing signature headers"),
        ({TIMESTAMP_HEADER: "12e3", SIGNATURE_HEADER: "v0=abc"}, "malformed timestamp"),
        ({TIMESTAMP_HEADER: "-5", SIGNATURE_HEADER: "v0=abc"}, "malformed timestamp"),
        ({TIMESTAMP_HEADER: " 1790000000", SIGNATURE_HEADER: "v0=abc"}, "malformed timestamp"),
        ({TIMESTAMP_HEADER: "１７９０", SIGNATURE_HEADER: "v0=abc"}, "malformed timestamp"),
        ({TIMESTAMP_HEADER: "9" * 40, SIGNATURE_HEADER: "v0=abc"}, "malformed timestamp"),
        ({TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "sha256=abc"}, "malformed signature"),
        ({TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "v0=ü" * 10}, "malformed signature"),
        ({TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "v0=" + "A" * 64}, "malformed signature"),
        ({TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "v0=" + "a" * 64}, "signature mismatch"),
    ],
)
def test_malformed_headers_fail_without_raising(headers: dict[str, str], reason: str) -> None:
    result = verify_request(SECRET, headers, BODY, NOW)
    assert (result.ok, result.reason) == (False, reason)
    assert not result


def test_a_tampered_body_or_another_secret_fails() -> None:
    headers = _headers(str(NOW))
    assert not verify_request(SECRET, headers, BODY + b"&text=rm", NOW).ok
    assert not verify_request("another-secret", headers, BODY, NOW).ok
    assert verify_request("", headers, BODY, NOW).reason == "no signing secret configured"


# --- signed requests over loopback ---------------------------------------------------------


@pytest.fixture(scope="module")
def verifier() -> Iterator[RunningServer]:
    """A receiver that checks the raw body, as the bot's server does, and says what it saw."""

    async def events(request: web.Request) -> web.Response:
        raw = await request.read()
        verdict = verify_request(SECRET, request.headers, raw, time.time())
        seen = {
            "reason": verdict.reason,
            "retry_num": request.headers.get("X-Slack-Retry-Num"),
            "retry_reason": request.headers.get("X-Slack-Retry-Reason"),
            "content_type": request.content_type,
            "body": raw.decode(),
        }
        return web.json_response(seen, status=200 if verdict.ok else 401)

    app = web.Application()
    app.router.add_post("/slack/events", events)
    server = serve_in_thread(app)
    yield server
    server.stop()


@pytest.fixture
async def signed(verifier: RunningServer) -> AsyncIterator[SignedSlackClient]:
    async with SignedSlackClient(verifier.url, SECRET) as client:
        yield client


COMMAND = slash_command(SlackIdentity("U0DEVELOPER"), "/forge", "help", "http://127.0.0.1/r")


async def test_a_signed_request_verifies(signed: SignedSlackClient) -> None:
    response = await signed.send(COMMAND)
    assert response.status == 200
    seen = response.json()
    assert (
        seen["body"] == COMMAND.decode()
        and seen["content_type"] == "application/x-www-form-urlencoded"
    )
    assert response.elapsed > 0


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"forge": True}, "signature mismatch"),
        ({"drop_headers": True}, "missing signature headers"),
        ({"drop_headers": "timestamp"}, "missing signature headers"),
        ({"drop_headers": "signature"}, "missing signature headers"),
        ({"timestamp": "not-a-number"}, "malformed timestamp"),
        ({"extra_headers": {SIGNATURE_HEADER: "garbage"}}, "malformed signature"),
    ],
)
async def test_forged_and_broken_requests_are_refused(
    signed: SignedSlackClient, options: dict[str, object], reason: str
) -> None:
    response = await signed.send(COMMAND, **options)  # type: ignore[arg-type]
    assert (response.status, response.json()["reason"]) == (401, reason)


@pytest.mark.parametrize(("offset", "status"), [(-400, 401), (400, 401), (-240, 200), (240, 200)])
async def test_staleness_both_ways(verifier: RunningServer, offset: int, status: int) -> None:
    async with SignedSlackClient(verifier.url, SECRET, clock_offset=offset) as client:
        assert (await client.send(COMMAND)).status == status


async def test_a_fixed_timestamp_is_used_for_every_request(verifier: RunningServer) -> None:
    stale = str(int(time.time()) - 3600)
    async with SignedSlackClient(verifier.url, SECRET, fixed_timestamp=stale) as client:
        assert client.timestamp_now() == stale
        assert (await client.send(COMMAND)).status == 401


async def test_event_retries_carry_slack_retry_headers(signed: SignedSlackClient) -> None:
    body = json.dumps({"type": "event_callback", "event_id": "Ev1"}).encode()
    seen = (await signed.send(body, retry_num=2, retry_reason="http_error")).json()
    assert (seen["retry_num"], seen["retry_reason"]) == ("2", "http_error")
    assert seen["content_type"] == "application/json"
