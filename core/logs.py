"""Structured logs: JSON in production, readable in a terminal, and never a secret.

Every record passes a redaction filter that removes Slack tokens, bearer tokens, signing
secrets and `response_url`s, whatever library logged them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_SECRET_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]+"),
    re.compile(r"xapp-[A-Za-z0-9-]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"https://hooks\.slack\.com/[^\s\"']+"),
    re.compile(r"(?i)(response_url[\"'=:\s]+)[^\s\"'&]+"),
    re.compile(r"(?i)(password[\"'=:\s]+)[^\s\"'&]+"),
    re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^:\s]+:[^@\s]+@"),
]
_extra_secrets: list[str] = []


def register_secret(value: str | None) -> None:
    """Values (signing secret, API tokens) that must never appear in any log line."""
    if value and len(value) >= 6 and value not in _extra_secrets:
        _extra_secrets.append(value)


def redact(text: str) -> str:
    for secret in _extra_secrets:
        text = text.replace(secret, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if getattr(record, "request_id", ""):
            payload["request_id"] = record.request_id  # type: ignore[attr-defined]
        for key in ("command", "operation_id", "job", "outcome", "duration_ms"):
            if hasattr(record, key):
                payload[key] = getattr(record, key)
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S")


def configure_logging(fmt: str = "json", level: str = "INFO", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # slack_bolt and slack_sdk log request bodies (and with them response_urls) at DEBUG/INFO.
    # Our boundary reports listener errors; bolt's own warnings are start-up noise.
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)
    for noisy in ("slack_sdk", "aiohttp.access", "kubernetes", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
