"""The one JSON-over-HTTPS client for the code hosts' REST APIs (GitHub, GitLab), used by the
preview calls (`github`, `gitlab`) and the pull-request calls (`pull_requests`).

One aiohttp session per client, at most `concurrency` calls in flight, 429 and 5xx answers and
dropped connections retried with exponential backoff (honouring `Retry-After`, capped), and a
4xx refusal raised at once with the host's own message: `CodeHostError` (with its `status`),
a `NotFound` for 404 and a `Conflict` for 405/409/422 (the call clashes with the pull request's
state, or a duplicate). The token goes in a header set once;
it is never part of a URL, an exception message or a log line.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aiohttp

from core.errors import Conflict, DependencyUnavailable, ForgebotError, NotFound
from core.metrics import observe_call

log = logging.getLogger(__name__)


class CodeHostError(ForgebotError):
    """The code host refused a call (4xx); the message says what it said."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CodeHostNotFound(CodeHostError, NotFound):
    """404: no such repository, pull request, comment..."""


class CodeHostConflict(CodeHostError, Conflict):
    """405, 409, 422: the call clashes with the current state (not mergeable, head moved,
    already exists, invalid)."""


GITHUB_API_VERSION = "2022-11-28"


def refusal(status: int, message: str) -> CodeHostError:
    if status == 404:
        return CodeHostNotFound(status, message)
    if status in (405, 409, 422):
        return CodeHostConflict(status, message)
    return CodeHostError(status, message)


def github_rest(base_url: str, token: str, *, timeout: float = 10.0) -> RestClient:
    """GitHub's REST API: a bearer token and the documented version and media-type headers."""
    return RestClient(
        "github",
        base_url,
        {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
            "User-Agent": "forgebot",
        },
        timeout=timeout,
    )


def gitlab_rest(base_url: str, token: str, *, timeout: float = 10.0) -> RestClient:
    """GitLab's v4 API (`base_url` ends in `/api/v4`): a `PRIVATE-TOKEN` header."""
    return RestClient(
        "gitlab", base_url, {"PRIVATE-TOKEN": token, "User-Agent": "forgebot"}, timeout=timeout
    )


class RestClient:
    def __init__(
        self,
        system: str,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        max_retry_after: float = 10.0,
        concurrency: int = 8,
    ) -> None:
        self.system = system
        self.base = base_url.rstrip("/")
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._backoff = backoff
        self._max_retry_after = max_retry_after
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        method: str,
        path: str,
        operation: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """`operation` names the call for metrics (low cardinality: never an id)."""
        url = f"{self.base}/{path.lstrip('/')}"
        async with self._slots:
            with observe_call(self.system, operation):
                for attempt in range(self._retries + 1):
                    wait = self._backoff * (2**attempt) * (0.5 + random.random())
                    try:
                        async with self._client().request(
                            method, url, json=body, params=query
                        ) as response:
                            if response.status < 400:
                                return await response.json(content_type=None)
                            text = (await response.text())[:300]
                            if response.status != 429 and response.status < 500:
                                raise refusal(
                                    response.status,
                                    f"{self.system} refused {operation} ({response.status}): "
                                    f"{_message(text)}",
                                )
                            retry_after = response.headers.get("Retry-After", "")
                            if retry_after.isdigit():
                                wait = min(float(retry_after), self._max_retry_after)
                            problem = f"HTTP {response.status}"
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        problem = type(exc).__name__
                    if attempt < self._retries:
                        await asyncio.sleep(wait)
                raise DependencyUnavailable(
                    f"{self.system} is unavailable for {operation} ({problem}); "
                    "forgebot will try again"
                )


def _message(text: str) -> str:
    """The `message` of a JSON error body, else the text itself (both APIs answer JSON)."""
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or text)
    return text
