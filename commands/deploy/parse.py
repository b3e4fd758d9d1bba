"""Deploy, rollback and freeze commands -> typed requests.

VERSION follows the OCI distribution reference grammar: a tag
(`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or a digest (`sha256:` + 64 lowercase hex). The image
repository always comes from the catalog, never from what the user typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from core.block_limits import escape
from core.durations import DurationError, parse_duration
from core.errors import UserInputError

TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

DEPLOY_USAGE = "`/forge deploy SERVICE VERSION to ENV [hotfix]`"
ROLLBACK_USAGE = "`/forge rollback SERVICE ENV [to REVISION|VERSION]`"
FREEZE_USAGE = "`/forge freeze ENV [for 2h] REASON`\n`/forge unfreeze ENV`"


@dataclass(frozen=True)
class Version:
    text: str

    @property
    def is_digest(self) -> bool:
        return self.text.startswith("sha256:")

    def image(self, repository: str) -> str:
        return f"{repository}@{self.text}" if self.is_digest else f"{repository}:{self.text}"


def parse_version(text: str) -> Version:
    if DIGEST.fullmatch(text) or TAG.fullmatch(text):
        return Version(text)
    if text.startswith("sha256:"):
        raise UserInputError(
            f"`{escape(text)}` is not a sha256 digest: it needs exactly 64 lowercase hex digits."
        )
    if ":" in text or "/" in text or "@" in text:
        raise UserInputError(
            f"`{escape(text)}` looks like an image reference: give only the version (a tag like 1.4.2, "
            "or sha256:<digest>); the image repository comes from the catalog."
        )
    raise UserInputError(
        f"`{escape(text)}` is not a valid image tag: up to 128 letters, digits, '_', '.' and '-', "
        "not starting with '.' or '-'."
    )


def _name(text: str, what: str, usage: str) -> str:
    if NAME.fullmatch(text) is None or len(text) > 63:
        raise UserInputError(f"`{escape(text)}` is not a {what} name.", usage=usage)
    return text


@dataclass(frozen=True)
class DeployRequest:
    service: str
    version: Version
    environment: str
    hotfix: bool = False


def parse_deploy(args: str) -> DeployRequest:
    words = args.split()
    hotfix = bool(words) and words[-1].lower() == "hotfix"
    if hotfix:
        words = words[:-1]
    if len(words) != 4 or words[2].lower() != "to":
        raise UserInputError(
            "Say what to deploy where, like `checkout 1.4.2 to staging`.", usage=DEPLOY_USAGE
        )
    service = _name(words[0].lower(), "service", DEPLOY_USAGE)
    environment = _name(words[3].lower(), "environment", DEPLOY_USAGE)
    return DeployRequest(service, parse_version(words[1]), environment, hotfix)


@dataclass(frozen=True)
class RollbackRequest:
    service: str
    environment: str
    revision: int | None = None
    version: str | None = None
    """`to 1.4.1`: the newest revision that ran this version (people type versions)."""


def parse_rollback(args: str) -> RollbackRequest:
    words = args.split()
    revision: int | None = None
    version: str | None = None
    if len(words) == 4 and words[2].lower() == "to":
        if words[3].isdigit() and int(words[3]) >= 1:
            revision = int(words[3])
        elif DIGEST.fullmatch(words[3]) or TAG.fullmatch(words[3]):
            version = words[3]
        else:
            raise UserInputError(
                f"`{escape(words[3])}` is not a revision number or a version.",
                usage=ROLLBACK_USAGE,
            )
        words = words[:2]
    if len(words) != 2:
        raise UserInputError(
            "Say what to roll back where, like `checkout prod`.", usage=ROLLBACK_USAGE
        )
    return RollbackRequest(
        _name(words[0].lower(), "service", ROLLBACK_USAGE),
        _name(words[1].lower(), "environment", ROLLBACK_USAGE),
        revision,
        version,
    )


@dataclass(frozen=True)
class FreezeRequest:
    environment: str
    duration: timedelta | None
    reason: str


def parse_freeze(args: str) -> FreezeRequest:
    words = args.split()
    if not words:
        raise UserInputError("Say which environment to freeze, and why.", usage=FREEZE_USAGE)
    environment = _name(words[0].lower(), "environment", FREEZE_USAGE)
    rest = words[1:]
    duration: timedelta | None = None
    if len(rest) >= 2 and rest[0].lower() == "for":
        try:
            duration = parse_duration(rest[1])
        except DurationError as exc:
            raise UserInputError(str(exc), usage=FREEZE_USAGE) from None
        rest = rest[2:]
    reason = " ".join(rest).strip()
    if not reason:
        raise UserInputError(
            "A freeze needs a reason, so people know why deploys stopped.", usage=FREEZE_USAGE
        )
    return FreezeRequest(environment, duration, reason[:500])
