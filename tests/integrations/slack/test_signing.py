from __future__ import annotations

import pytest

from integrations.slack.signing import compute_signature, verify_request

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BODY = b"token=x&team_id=T1&command=%2Fforge&text=help"
NOW = 1_790_000_000


def _headers(stamp: str, signature: str | None = None) -> dict[str, str]:
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature or compute_signature(SECRET, stamp, BODY),
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


@pytest.mark.parametrize("skew", [301, -301, 86400])
def test_outside_the_window(skew: int) -> None:
    result = verify_request(SECRET, _headers(str(NOW + skew)), BODY, NOW)
    assert not result.ok and "timestamp" in result.reason


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": str(NOW)},
        {"X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": "12e3", "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": "-5", "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": "１２３", "X-Slack-Signature": "v0=abc"},
        {"X-Slack-Request-Timestamp": str(NOW), "X-Slack-Signature": "sha256=abc"},
        {"X-Slack-Request-Timestamp": str(NOW), "X-Slack-Signature": "v0=ü"},
    ],
)
def test_malformed_headers_never_raise(headers: dict[str, str]) -> None:
    assert not verify_request(SECRET, headers, BODY, NOW).ok


def test_tampered_body_fails() -> None:
    headers = _headers(str(NOW))
    assert not verify_request(SECRET, headers, BODY + b"&text=rm", NOW).ok
    assert not verify_request("another-secret", headers, BODY, NOW).ok
