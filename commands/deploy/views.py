"""Messages of the deploy capability."""

from __future__ import annotations

from typing import Any

from commands.deploy.freeze import FreezeState
from commands.deploy.history import HistoryLine
from commands.deploy.rollback import RollbackPlan
from integrations.kubernetes.rollout import RolloutStatus
from integrations.slack.blockkit import escape


def _until(state: FreezeState) -> str:
    return (
        f"until {state.until:%a %d %b %H:%M} UTC" if state.until else "until someone unfreezes it"
    )


def frozen_text(state: FreezeState) -> str:
    return (
        f":snowflake: *{escape(state.environment)}* is frozen {_until(state)} by <@{state.by}>: "
        f"{escape(state.reason)}. Deploys are refused; on-call may still roll back."
    )


def unfrozen_text(environment: str, lifted: int, still: FreezeState | None) -> str:
    if still is not None and still.scheduled:
        return (
            f":snowflake: {escape(environment)} stays frozen by a scheduled window "
            f"({escape(still.reason)}) {_until(still)}."
        )
    if not lifted:
        return f"{escape(environment)} was not frozen."
    return f":sunny: *{escape(environment)}* is open for deploys again."


def freeze_status(states: list[FreezeState]) -> tuple[str, list[dict[str, Any]]]:
    if not states:
        return "No freezes", [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": ":sunny: No environment is frozen."},
            }
        ]
    lines = [
        f":snowflake: *{escape(s.environment)}* {_until(s)}: {escape(s.reason)} "
        f"({'scheduled in the catalog' if s.scheduled else f'by <@{s.by}>'})"
        for s in states
    ]
    return f"{len(states)} frozen", [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    ]


def history(
    service: str, environment: str, lines: list[HistoryLine]
) -> tuple[str, list[dict[str, Any]]]:
    title = f"{service} in {environment}: {len(lines)} revisions"
    if not lines:
        return title, [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"No revisions of {escape(service)} yet."},
            }
        ]
    rows = []
    for line in lines[:30]:
        when = f"{line.created:%Y-%m-%d %H:%M} UTC" if line.created else "unknown time"
        who = (
            f" by <@{line.deployed_by}>"
            if line.deployed_by.startswith(("U", "W"))
            else (f" by {escape(line.deployed_by)}" if line.deployed_by else "")
        )
        marker = " ← current" if line.current else ""
        rows.append(f"`{line.revision:>3}` *{escape(line.version)}* {when}{who}{marker}")
    return title, [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(title)}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(rows)[:3000]}},
    ]


ROLLBACK_CONFIRM = "deploy_rollback_confirm"


def rollback_confirm(plan: RollbackPlan) -> tuple[str, list[dict[str, Any]]]:
    text = f"Roll back {plan.service} in {plan.environment} from {plan.from_version} to {plan.to_version}?"
    value = f"{plan.service}|{plan.environment}|{plan.to_revision}"
    return text, [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f":rewind: Roll back *{escape(plan.service)}* in *{escape(plan.environment)}* from "
                f"`{escape(plan.from_version)}` to `{escape(plan.to_version)}` (revision {plan.to_revision})?",
            },
        },
        {
            "type": "actions",
            "block_id": "rollback-confirm",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Roll back now"},
                    "style": "danger",
                    "action_id": ROLLBACK_CONFIRM,
                    "value": value,
                },
            ],
        },
    ]


def _bar(fraction: float, width: int = 20) -> str:
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled)


def rollout_message(
    plan: RollbackPlan, actor: str, status: RolloutStatus | None, elapsed: float
) -> tuple[str, list[dict[str, Any]]]:
    head = (
        f"*{escape(plan.service)}* in *{escape(plan.environment)}*: rolling back "
        f"`{escape(plan.from_version)}` → `{escape(plan.to_version)}`, by <@{actor}>"
    )
    if status is None:
        line = ":hourglass_flowing_sand: starting…"
    elif status.done:
        line = f":white_check_mark: done in {elapsed:.0f} s: {status.ready}/{status.replicas} ready"
    elif status.failed:
        line = f":x: failed after {elapsed:.0f} s: {escape(status.reason)}"
    else:
        line = f"`{_bar(status.fraction)}` {status.ready}/{status.replicas} ready, {elapsed:.0f} s"
    text = f"{plan.service} {plan.environment}: rollback to {plan.to_version}"
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": f"{head}\n{line}"}}]
