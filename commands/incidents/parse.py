"""What `/forge incident ...` asks for."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from core.catalog import Catalog
from core.errors import UserInputError

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
DEFAULT_SEVERITY = "SEV3"
TITLE_MAX = 150
TEXT_MAX = 2900
CHANNEL_NAME_MAX = 80
USAGE = "\n".join(
    [
        "`/forge incident [SEV1-4] TITLE`  open an incident (or `/forge incident` for a form)",
        "`/forge incident update TEXT`  post a status update (in the incident channel)",
        "`/forge incident severity SEV1-4`  change the severity",
        "`/forge incident resolve [TEXT]`  resolve it: summary and postmortem draft",
    ]
)


@dataclass(frozen=True)
class OpenRequest:
    title: str
    severity: str
    service: str
    summary: str = ""


@dataclass(frozen=True)
class ChannelRequest:
    """update / severity / resolve: acts on the incident of the channel it is typed in."""

    verb: str
    text: str


def severity_of(word: str) -> str | None:
    cleaned = word.strip().upper()
    if cleaned in ("1", "2", "3", "4"):
        cleaned = f"SEV{cleaned}"
    if cleaned.startswith("SEV-"):
        cleaned = "SEV" + cleaned[4:]
    return cleaned if cleaned in SEVERITIES else None


def parse(args: str, catalog: Catalog) -> OpenRequest | ChannelRequest | None:
    """None: no arguments, open the form."""
    words = args.split()
    if not words:
        return None
    verb = words[0].lower()
    rest = " ".join(words[1:])
    if verb in ("update", "resolve"):
        if verb == "update" and not rest:
            raise UserInputError("Say what the update is.", usage=USAGE)
        return ChannelRequest(verb, rest[:TEXT_MAX])
    if verb == "severity":
        severity = severity_of(rest)
        if severity is None:
            raise UserInputError("Give a severity: SEV1 (worst) to SEV4.", usage=USAGE)
        return ChannelRequest(verb, severity)
    severity = severity_of(words[0])
    if severity is not None:
        words = words[1:]
    title = " ".join(words).strip()
    if not title:
        raise UserInputError("Give the incident a title.", usage=USAGE)
    if len(title) > TITLE_MAX:
        raise UserInputError(f"Keep the title under {TITLE_MAX} characters.", usage=USAGE)
    return OpenRequest(title, severity or DEFAULT_SEVERITY, service_in(title, catalog))


def service_in(title: str, catalog: Catalog) -> str:
    """The first catalog service the title names as a word ("" if none)."""
    for word in re.findall(r"[a-z0-9][a-z0-9-]*", title.lower()):
        if catalog.service(word) is not None:
            return str(word)
    return ""


def channel_name(title: str, opened_at: datetime, attempt: int = 1) -> str:
    """`inc-YYYYMMDD-<slug>`: Slack's rules (lowercase letters, digits, hyphens; 80 at most)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-") or "incident"
    prefix = f"inc-{opened_at:%Y%m%d}-"
    suffix = f"-{attempt}" if attempt > 1 else ""
    room = CHANNEL_NAME_MAX - len(prefix) - len(suffix)
    return prefix + slug[:room].rstrip("-") + suffix
