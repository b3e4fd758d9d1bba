"""Messages of `/forge scale`: the confirmation (production) and the announcement."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from core.block_limits import escape

if TYPE_CHECKING:
    from commands.scale.service import ScalePlan

SCALE_CONFIRM = "scale_confirm"
SCALE_CANCEL = "scale_cancel"


def replicas(count: int) -> str:
    return f"{count} replica" if count == 1 else f"{count} replicas"


def confirm(plan: ScalePlan) -> tuple[str, list[dict[str, Any]]]:
    request = plan.request
    text = (
        f"Scale {request.service} in {request.environment} from {replicas(plan.current)} "
        f"to {replicas(request.replicas)}?"
    )
    value = json.dumps(
        {
            "service": request.service,
            "environment": request.environment,
            "replicas": request.replicas,
            "reason": request.reason,
        }
    )[:2000]
    glass = (
        f"\n:rotating_light: Breaking glass on a freeze ({escape(plan.frozen)}): "
        f"{escape(request.reason)}"
        if plan.frozen
        else ""
    )
    return text, [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": (
                    f":straight_ruler: Scale *{escape(request.service)}* in "
                    f"*{escape(request.environment)}* from {replicas(plan.current)} to "
                    f"*{replicas(request.replicas)}*?{glass}"
                )[:2990],
            },
        },
        {
            "type": "actions",
            "block_id": "scale-confirm",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Scale now"},
                    "style": "danger",
                    "action_id": SCALE_CONFIRM,
                    "value": value,
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "action_id": SCALE_CANCEL,
                    "value": value,
                },
            ],
        },
    ]


def scaled_text(
    actor: str, service: str, environment: str, before: int, to: int, reason: str, frozen: str
) -> str:
    text = (
        f":straight_ruler: <@{actor}> scaled *{escape(service)}* in *{escape(environment)}* "
        f"from {replicas(before)} to {replicas(to)}."
    )
    if frozen:
        text += f" :rotating_light: Broke glass on a freeze ({escape(frozen)}): {escape(reason)}"
    return text


def started_text(plan: ScalePlan, started: bool) -> str:
    request = plan.request
    if not started:
        return "That scale was already started."
    return (
        f"Scaling {escape(request.service)} in {escape(request.environment)} to "
        f"{replicas(request.replicas)}…"
    )
