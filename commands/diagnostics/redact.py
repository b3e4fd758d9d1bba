"""Logs shown in Slack never carry secrets: known token shapes, `key=value` credentials,
private keys and long random-looking strings are replaced by `[redacted]`.

The log filter's own patterns (`core.logs.redact`: Slack tokens, bearer tokens, passwords,
database URLs, registered secrets) run first; these add what application logs tend to leak.
"""

from __future__ import annotations

import re

from core.logs import redact as redact_known

REDACTED = "[redacted]"
_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
    re.compile(r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}"),
]
_KEY_VALUE = re.compile(
    r"(?i)((?:api[_-]?key|apikey|access[_-]?key|secret(?:[_-]?key)?|token|passwd|pwd|"
    r"credentials?|private[_-]?key|client[_-]?secret|authorization)"
    r"[\"']?\s*[=:]\s*[\"']?)([^\s\"',;&]+)"
)
_LONG_RANDOM = re.compile(
    r"\b(?=[A-Za-z0-9+/_=-]*\d)(?=[A-Za-z0-9+/_=-]*[A-Za-z])[A-Za-z0-9+/_=-]{40,}"
)


def redact(text: str) -> str:
    text = redact_known(text)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _KEY_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    return _LONG_RANDOM.sub(REDACTED, text)
