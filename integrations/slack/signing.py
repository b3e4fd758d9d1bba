"""Slack request signatures (v0), checked on the raw body before anything parses it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SKEW_SECONDS = 300


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    reason: str = ""


def compute_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_request(
    secret: str, headers: Mapping[str, str], body: bytes, now: float
) -> VerificationResult:
    """Never raises: anything missing or malformed is simply not verified."""
    timestamp = headers.get("X-Slack-Request-Timestamp") or headers.get("x-slack-request-timestamp")
    signature = headers.get("X-Slack-Signature") or headers.get("x-slack-signature")
    if not timestamp or not signature:
        return VerificationResult(False, "missing signature headers")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return VerificationResult(False, "malformed timestamp")
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        return VerificationResult(False, "stale or future timestamp")
    if not signature.startswith("v0=") or not signature.isascii():
        return VerificationResult(False, "malformed signature")
    expected = compute_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return VerificationResult(False, "signature mismatch")
    return VerificationResult(True)
