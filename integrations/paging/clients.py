"""Trigger and resolve pages in PagerDuty (Events API v2) or Opsgenie (Alert API v2).

Both are keyed by forgebot's own dedup key (`forgebot-incident-<id>`), so a retried trigger
never opens a second page and a resolve closes the one that was opened. Keys are secrets:
they are read from the environment variable the catalog names and never logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from core.catalog import Paging
from core.errors import DependencyUnavailable
from core.logs import register_secret

log = logging.getLogger(__name__)

PAGERDUTY_SEVERITY = {"SEV1": "critical", "SEV2": "error", "SEV3": "warning", "SEV4": "info"}
OPSGENIE_PRIORITY = {"SEV1": "P1", "SEV2": "P2", "SEV3": "P3", "SEV4": "P4"}
SEVERITY_RANK = {"SEV1": 1, "SEV2": 2, "SEV3": 3, "SEV4": 4}


class PagingError(DependencyUnavailable):
    """The paging provider refused or could not be reached."""


@dataclass(frozen=True)
class Page:
    dedup_key: str
    summary: str
    severity: str
    """SEV1..SEV4"""
    source: str
    component: str
    group: str
    at: datetime
    link: str = ""
    details: dict[str, str] | None = None


class Pager(Protocol):
    provider: str

    async def trigger(self, page: Page) -> None: ...

    async def resolve(self, dedup_key: str, note: str) -> None: ...


def should_page(paging: Paging, severity: str) -> bool:
    return SEVERITY_RANK.get(severity, 9) <= SEVERITY_RANK[paging.min_severity]


def _key(paging: Paging) -> str:
    key = os.environ.get(paging.key_env, "")
    if not key:
        raise PagingError(f"the paging key variable {paging.key_env} is not set")
    register_secret(key)
    return key


async def _post(url: str, body: dict[str, Any], headers: dict[str, str], timeout: float) -> None:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, json=body, headers=headers) as response,
        ):
            if response.status >= 300:
                text = (await response.text())[:300]
                raise PagingError(f"the paging provider answered {response.status}: {text}")
    except aiohttp.ClientError as exc:
        raise PagingError(f"the paging provider is unreachable ({type(exc).__name__})") from None
    except TimeoutError:
        raise PagingError("the paging provider did not answer in time") from None


@dataclass
class PagerDutyPager:
    """Events API v2: `POST /v2/enqueue` with the integration's routing key."""

    base_url: str
    paging: Paging
    timeout: float = 10.0
    provider: str = "PagerDuty"

    async def trigger(self, page: Page) -> None:
        payload: dict[str, Any] = {
            "summary": page.summary[:1024],
            "source": page.source,
            "severity": PAGERDUTY_SEVERITY.get(page.severity, "error"),
            "timestamp": page.at.isoformat(),
            "component": page.component,
            "group": page.group,
            "class": "incident",
            "custom_details": page.details or {},
        }
        body: dict[str, Any] = {
            "routing_key": _key(self.paging),
            "event_action": "trigger",
            "dedup_key": page.dedup_key,
            "payload": payload,
            "client": "forgebot",
        }
        if page.link:
            body["links"] = [{"href": page.link, "text": "Incident channel"}]
            body["client_url"] = page.link
        await _post(f"{self.base_url.rstrip('/')}/v2/enqueue", body, {}, self.timeout)

    async def resolve(self, dedup_key: str, note: str) -> None:
        body = {
            "routing_key": _key(self.paging),
            "event_action": "resolve",
            "dedup_key": dedup_key,
        }
        await _post(f"{self.base_url.rstrip('/')}/v2/enqueue", body, {}, self.timeout)


@dataclass
class OpsgeniePager:
    """Alert API v2: `POST /v2/alerts` and `POST /v2/alerts/{alias}/close?identifierType=alias`,
    authenticated with `Authorization: GenieKey <key>`."""

    base_url: str
    paging: Paging
    timeout: float = 10.0
    provider: str = "Opsgenie"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"GenieKey {_key(self.paging)}"}

    async def trigger(self, page: Page) -> None:
        body: dict[str, Any] = {
            "message": page.summary[:130],
            "alias": page.dedup_key[:512],
            "description": (f"{page.summary}\n{page.link}".strip())[:15000],
            "priority": OPSGENIE_PRIORITY.get(page.severity, "P3"),
            "source": page.source,
            "entity": page.component,
            "tags": ["forgebot", page.severity, page.group][:20],
            "details": page.details or {},
        }
        await _post(f"{self.base_url.rstrip('/')}/v2/alerts", body, self._headers(), self.timeout)

    async def resolve(self, dedup_key: str, note: str) -> None:
        url = f"{self.base_url.rstrip('/')}/v2/alerts/{dedup_key}/close?identifierType=alias"
        body = {"source": "forgebot", "note": note[:25000]}
        await _post(url, body, self._headers(), self.timeout)


def pager_for(paging: Paging, *, pagerduty_url: str, opsgenie_url: str) -> Pager:
    if paging.provider == "pagerduty":
        return PagerDutyPager(pagerduty_url, paging)
    return OpsgeniePager(opsgenie_url, paging)
