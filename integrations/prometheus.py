"""The Prometheus HTTP API: instant and range queries, behind a small protocol.

Queries go as POST forms (a batched SLO query is tens of kilobytes, too long for a URL). The
evaluation time is always passed explicitly, from the caller's injected clock, so a report is
about the moment the bot thinks it is. 5xx answers and dropped connections are retried with a
short backoff; a PromQL error (the API's `errorType`/`error`) is not, it is the query's fault.
At most `concurrency` requests are in flight at once, whatever the callers ask for.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp

from core.errors import DependencyUnavailable, ForgebotError
from core.metrics import observe_call

log = logging.getLogger(__name__)


class PrometheusUnavailable(DependencyUnavailable):
    """Prometheus cannot be reached, timed out or failed on its side."""


class PromQLError(ForgebotError):
    """Prometheus refused the query itself (syntax, types): the query needs fixing."""

    def __init__(self, error_type: str, message: str, query: str) -> None:
        super().__init__(f"PromQL error ({error_type}): {message}")
        self.error_type = error_type
        self.message = message
        self.query = query


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[datetime, float]]


class PrometheusGateway(Protocol):
    """What the SLO capability needs from Prometheus; the sandbox may supply another one."""

    queries_sent: int

    async def instant(self, query: str, at: datetime) -> list[Sample]: ...

    async def range(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]: ...

    async def close(self) -> None: ...


def _value(raw: str) -> float:
    value = float(raw)
    return value if math.isfinite(value) else math.nan


class PrometheusClient:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 2.0,
        retries: int = 2,
        backoff: float = 0.1,
        concurrency: int = 8,
    ) -> None:
        self.base = url.rstrip("/") + "/api/v1/"
        self._headers: dict[str, str] = {}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif username:
            pair = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retries = retries
        self._backoff = backoff
        self._slots = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self.queries_sent = 0
        self.max_in_flight = 0
        self._in_flight = 0

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def instant(self, query: str, at: datetime) -> list[Sample]:
        data = await self._post("query", {"query": query, "time": f"{at.timestamp():.3f}"}, query)
        result_type, result = data.get("resultType"), data.get("result") or []
        if result_type == "scalar":
            return [Sample({}, _value(result[1]))]
        if result_type != "vector":
            raise PromQLError("bad_data", f"expected a vector, got a {result_type}", query)
        return [Sample(dict(r.get("metric") or {}), _value(r["value"][1])) for r in result]

    async def range(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Series]:
        form = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step.total_seconds():g}",
        }
        data = await self._post("query_range", form, query)
        return [
            Series(
                dict(r.get("metric") or {}),
                [(datetime.fromtimestamp(float(t), UTC), _value(v)) for t, v in r["values"]],
            )
            for r in data.get("result") or []
        ]

    async def _post(self, endpoint: str, form: dict[str, str], query: str) -> dict[str, Any]:
        async with self._slots:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                with observe_call("prometheus", endpoint):
                    return await self._attempts(endpoint, form, query)
            finally:
                self._in_flight -= 1

    async def _attempts(self, endpoint: str, form: dict[str, str], query: str) -> dict[str, Any]:
        problem = ""
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            self.queries_sent += 1
            try:
                async with self._client().post(self.base + endpoint, data=form) as response:
                    status = response.status
                    try:
                        body = await response.json(content_type=None)
                    except (ValueError, aiohttp.ContentTypeError):
                        body = None
            except TimeoutError:
                raise PrometheusUnavailable("SLO data unavailable: Prometheus timed out") from None
            except aiohttp.ClientError as exc:
                problem = f"cannot reach Prometheus ({type(exc).__name__})"
                continue
            if isinstance(body, dict) and body.get("status") == "success":
                data: dict[str, Any] = body.get("data") or {}
                return data
            error_type = str((body or {}).get("errorType", "")) if isinstance(body, dict) else ""
            message = str((body or {}).get("error", "")) if isinstance(body, dict) else ""
            if status in (400, 422) or error_type in ("bad_data", "execution"):
                raise PromQLError(error_type or "bad_data", message or f"HTTP {status}", query)
            if status in (401, 403):
                raise PrometheusUnavailable(
                    "SLO data unavailable: Prometheus refused the bot's credentials"
                )
            problem = f"Prometheus answered HTTP {status}" + (f" ({message})" if message else "")
            if status < 500:
                break
        log.warning("prometheus %s failed: %s", endpoint, problem)
        raise PrometheusUnavailable(f"SLO data unavailable: {problem}")
