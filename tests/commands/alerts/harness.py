"""The running bot with the Alertmanager webhook enabled, and v4 payload builders."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiohttp

from core.catalog import Catalog
from integrations.sandbox.slack_api import RecordedCall
from tests.bot_harness import BotHarness

WEBHOOK_TOKEN = "am-webhook-token-0123456789"


def _catalog_with_runbook(catalog: Catalog) -> Catalog:
    services = [
        s.model_copy(update={"runbook": "https://runbooks.example.com/checkout"})
        if s.name == "checkout"
        else s
        for s in catalog.services
    ]
    return catalog.model_copy(update={"services": services})


def alert(
    name: str,
    status: str,
    starts: datetime,
    *,
    fingerprint: str,
    labels: dict[str, str] | None = None,
    summary: str = "",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, **(labels or {})},
        "annotations": {"summary": summary} if summary else {},
        "startsAt": starts.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.com/graph",
        "fingerprint": fingerprint,
    }


def payload(
    group_key: str, status: str, alerts: list[dict[str, Any]], common: dict[str, str]
) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "forgebot",
        "groupLabels": {k: common[k] for k in ("alertname", "service") if k in common},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com",
        "alerts": alerts,
    }


class AlertHarness(BotHarness):
    async def idle(self) -> None:
        """Also wait for handlers still working after their ack (a paced post can hold one
        for a second while the audit log and the calls look quiet)."""
        assert self.runtime.ctx is not None
        while True:
            assert await self.runtime.ctx.boundary.drain(10), "handlers still running"
            await super().idle()
            if not self.runtime.ctx.boundary.in_flight:
                return

    async def webhook(self, body: Any, *, token: str = WEBHOOK_TOKEN) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.runtime.url}/api/alertmanager",
                data=json.dumps(body),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            ) as response,
        ):
            return response.status, await response.json()

    def posts(self, channel: str) -> list[RecordedCall]:
        return [
            c
            for c in self.slack.state.calls
            if c.method == "chat.postMessage" and c.args.get("channel") == channel and c.ok
        ]

    def top_level(self, channel: str) -> list[RecordedCall]:
        return [c for c in self.posts(channel) if not c.args.get("thread_ts")]

    def replies(self, channel: str, ts: str) -> list[RecordedCall]:
        return [c for c in self.posts(channel) if c.args.get("thread_ts") == ts]
