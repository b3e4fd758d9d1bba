"""Slack request signatures (v0), checked on the raw body before anything parses it.

Slack signs `v0:<timestamp>:<raw body>` with the app's signing secret (HMAC-SHA256) and sends
the result in `X-Slack-Signature` next to `X-Slack-Request-Timestamp`. Anything we cannot check
(missing, malformed, stale) is refused: a request we cannot authenticate is not from Slack.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
MAX_SKEW_SECONDS = 300
"""Slack's advice: refuse requests more than five minutes old (replays), and, since clocks
drift both ways, more than five minutes in the future too."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def compute_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: str, body: bytes) -> dict[str, str]:
    """The two headers Slack would send with `body` at `timestamp`."""
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: compute_signature(secret, timestamp, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    # A plain dict is case-sensitive; HTTP header names are not.
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None


def verify_request(
    secret: str, headers: Mapping[str, str], body: bytes, now: float
) -> VerificationResult:
    """Check `body` (raw bytes, exactly as received) against Slack's signature headers.

    `now` is the current Unix time from the caller's clock. Never raises: anything missing or
    malformed is simply not verified, with a reason fit for a log line (no secret in it).
    """
    if not secret:
        return VerificationResult(False, "no signing secret configured")
    timestamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not timestamp or not signature:
        return VerificationResult(False, "missing signature headers")
    if not _TIMESTAMP.fullmatch(timestamp):
        return VerificationResult(False, "malformed timestamp")
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        return VerificationResult(False, "stale or future timestamp")
    if not _SIGNATURE.fullmatch(signature):
        return VerificationResult(False, "malformed signature")
    expected = compute_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return VerificationResult(False, "signature mismatch")
    return VerificationResult(True)
