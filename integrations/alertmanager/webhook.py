"""Alertmanager's webhook payload, version 4, as documented for `webhook_config` receivers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    startsAt: datetime  # Alertmanager's own field names, kept as they are
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    def key(self) -> str:
        """Alertmanager's fingerprint, or the sorted labels when an old sender omits it."""
        if self.fingerprint:
            return self.fingerprint
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


class WebhookMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1)
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    commonAnnotations: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[WebhookAlert] = []
