"""Socket Mode's entry into the bot: each envelope goes through the same bolt app as an HTTP
request, with the same rules (acks first, no listener is not a failure, what bolt cannot parse
is refused with one warning line), and its answer becomes the envelope's ack.

The connection itself (reconnects, backoff, shutdown) is `integrations.slack.socket_mode`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core import metrics
from core.ack_priority import PENDING_ACKS
from integrations.slack.socket_mode import Dispatch

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

log = logging.getLogger(__name__)

KINDS = {"slash_commands": "command", "interactive": "interaction", "events_api": "event"}
"""Envelope types, named like the HTTP request kinds in the metrics."""


def bolt_dispatcher(bolt: AsyncApp) -> Dispatch:
    """`dispatch` for `SocketModeClient`: the envelope's payload through `bolt`."""

    async def dispatch(
        envelope_type: str, payload: dict[str, Any], envelope: dict[str, Any]
    ) -> dict[str, Any] | None:
        from slack_bolt.request.async_request import AsyncBoltRequest

        started = time.perf_counter()
        kind = KINDS.get(envelope_type, envelope_type or "unknown")
        headers: dict[str, str | Sequence[str]] = {}
        if envelope.get("retry_attempt") is not None:
            headers["x-slack-retry-num"] = str(envelope["retry_attempt"])
        if envelope.get("retry_reason") is not None:
            headers["x-slack-retry-reason"] = str(envelope["retry_reason"])
        with PENDING_ACKS.answering():
            try:
                response = await bolt.async_dispatch(
                    AsyncBoltRequest(body=payload, mode="socket_mode", headers=headers or None)
                )
            except Exception as exc:  # a shape bolt cannot parse: acked, so Slack does not retry
                metrics.REQUESTS.labels(kind, "400").inc()
                log.warning(
                    "refused a Slack envelope bolt could not parse (%s): %s",
                    kind,
                    type(exc).__name__,
                )
                return None
        status = response.status
        if status == 404:
            log.info("no listener for a %s envelope; acknowledged", kind)
        elif status >= 400:
            log.warning("bolt answered %s to a %s envelope", status, kind)
        metrics.REQUESTS.labels(kind, str(status)).inc()
        metrics.ACK_SECONDS.labels(kind).observe(time.perf_counter() - started)
        if status != 200 or not response.body:
            return None
        content_type = (response.headers.get("content-type") or [""])[0]
        if content_type.startswith("application/json"):
            answer = json.loads(response.body)
            return answer if isinstance(answer, dict) else None
        return {"text": response.body}

    return dispatch
