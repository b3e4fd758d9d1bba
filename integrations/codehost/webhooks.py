"""Pull-request webhooks from GitHub and GitLab: verified on the raw body, then parsed.

GitHub signs the body with HMAC-SHA256 under the webhook's secret (`X-Hub-Signature-256:
sha256=<hex>`); GitLab sends the webhook's secret token as is (`X-Gitlab-Token`). Both are
compared in constant time, and nothing is parsed before they match. Parsing turns the payload
into a `PullRequestEvent`, or raises `MalformedWebhook` with a reason fit for a 400 answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

GITHUB_SIGNATURE = "X-Hub-Signature-256"
GITHUB_EVENT = "X-GitHub-Event"
GITHUB_DELIVERY = "X-GitHub-Delivery"
GITLAB_TOKEN = "X-Gitlab-Token"
GITLAB_EVENT = "X-Gitlab-Event"
GITLAB_EVENT_UUID = "X-Gitlab-Event-UUID"
GITLAB_IDEMPOTENCY = "Idempotency-Key"
GITLAB_MERGE_REQUEST_HOOK = "Merge Request Hook"


class MalformedWebhook(ValueError):
    """The payload is not a pull-request event we can read; the message says why."""


class Change(StrEnum):
    UP = "up"
    """Opened, reopened or pushed to: the preview should exist at `head_sha`."""
    DOWN = "down"
    """Closed or merged: the preview should be gone."""


@dataclass(frozen=True)
class PullRequestEvent:
    provider: str
    repository: str
    number: int
    change: Change
    head_sha: str
    at: datetime
    """The code host's time of the change (the pull request's `updated_at`)."""
    title: str = ""
    author: str = ""
    branch: str = ""
    url: str = ""
    merged: bool = False
    merge_commit_sha: str = ""
    merged_at: datetime | None = None


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    given = headers.get(GITHUB_SIGNATURE, "")
    if not secret or not given.startswith("sha256="):
        return False
    return hmac.compare_digest(given.encode(), github_signature(secret, body).encode())


def verify_gitlab(token: str, headers: Mapping[str, str]) -> bool:
    given = headers.get(GITLAB_TOKEN, "")
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedWebhook("the body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedWebhook("the body is not a JSON object")
    return data


def parse_time(value: object, what: str) -> datetime:
    """ISO 8601 (GitHub, GitLab's newer hooks) or `2026-11-24 10:00:00 UTC` (GitLab's older)."""
    if not isinstance(value, str) or not value:
        raise MalformedWebhook(f"{what} is missing")
    text = value.strip().replace(" UTC", "+00:00").replace("Z", "+00:00")
    if " " in text and "T" not in text:
        text = text.replace(" ", "T", 1).replace(" ", "")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedWebhook(f"{what} is not a time: {value[:40]}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _field(data: Mapping[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise MalformedWebhook(f"{'.'.join(path)} is missing")
        node = node[key]
    return node


def _text(data: Mapping[str, Any], *path: str) -> str:
    try:
        value = _field(data, *path)
    except MalformedWebhook:
        return ""
    return value if isinstance(value, str) else ""


def _sha(value: object, what: str) -> str:
    if not isinstance(value, str) or not 7 <= len(value) <= 64 or not value.isalnum():
        raise MalformedWebhook(f"{what} is not a commit SHA")
    return value.lower()


GITHUB_UP = frozenset({"opened", "reopened", "synchronize"})


def parse_github(body: bytes) -> PullRequestEvent | None:
    """A `pull_request` delivery; None for actions that change nothing (labeled, edited...)."""
    data = _json(body)
    action = _field(data, "action")
    if not isinstance(action, str):
        raise MalformedWebhook("action is not a string")
    if action not in GITHUB_UP and action != "closed":
        return None
    pr = _field(data, "pull_request")
    number = _field(pr, "number")
    repository = _field(data, "repository", "full_name")
    if not isinstance(number, int) or number <= 0 or not isinstance(repository, str):
        raise MalformedWebhook("pull_request.number or repository.full_name is invalid")
    merged = bool(pr.get("merged")) if isinstance(pr, Mapping) else False
    return PullRequestEvent(
        provider="github",
        repository=repository,
        number=number,
        change=Change.UP if action in GITHUB_UP else Change.DOWN,
        head_sha=_sha(_field(pr, "head", "sha"), "pull_request.head.sha"),
        at=parse_time(_field(pr, "updated_at"), "pull_request.updated_at"),
        title=_text(pr, "title"),
        author=_text(pr, "user", "login"),
        branch=_text(pr, "head", "ref"),
        url=_text(pr, "html_url"),
        merged=merged,
        merge_commit_sha=_text(pr, "merge_commit_sha").lower() if merged else "",
        merged_at=parse_time(pr.get("merged_at"), "pull_request.merged_at") if merged else None,
    )


GITLAB_UP = frozenset({"open", "reopen"})
GITLAB_DOWN = frozenset({"close", "merge"})


def parse_gitlab(body: bytes) -> PullRequestEvent | None:
    """A `Merge Request Hook`; None for updates that are not pushes (title, labels...)."""
    data = _json(body)
    if data.get("object_kind") != "merge_request":
        raise MalformedWebhook("object_kind is not merge_request")
    attrs = _field(data, "object_attributes")
    action = attrs.get("action") if isinstance(attrs, Mapping) else None
    pushed = action == "update" and bool(attrs.get("oldrev"))
    if action not in GITLAB_UP and action not in GITLAB_DOWN and not pushed:
        return None
    number = _field(attrs, "iid")
    repository = _field(data, "project", "path_with_namespace")
    if not isinstance(number, int) or number <= 0 or not isinstance(repository, str):
        raise MalformedWebhook("object_attributes.iid or project.path_with_namespace is invalid")
    merged = action == "merge"
    return PullRequestEvent(
        provider="gitlab",
        repository=repository,
        number=number,
        change=Change.DOWN if action in GITLAB_DOWN else Change.UP,
        head_sha=_sha(_field(attrs, "last_commit", "id"), "object_attributes.last_commit.id"),
        at=parse_time(_field(attrs, "updated_at"), "object_attributes.updated_at"),
        title=_text(attrs, "title"),
        author=_text(data, "user", "username"),
        branch=_text(attrs, "source_branch"),
        url=_text(attrs, "url"),
        merged=merged,
        merge_commit_sha=_text(attrs, "merge_commit_sha").lower() if merged else "",
        merged_at=parse_time(_field(attrs, "updated_at"), "object_attributes.updated_at")
        if merged
        else None,
    )
