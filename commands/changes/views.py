"""The "what changed" timeline as Block Kit: the `/forge changes` answer and a compact section
for incident cards and alert messages."""

from __future__ import annotations

from typing import Any

from commands.changes.service import Timeline
from commands.changes.timeline import ChangeEvent, ChangeKind
from core.block_limits import escape
from core.durations import format_duration
from integrations.slack.blocks import Block, button, confirm_dialog, context, header, section

ROLLBACK_THIS = "changes_rollback_this"
MAX_EVENTS = 40
"""Events shown as sections in one message (Slack allows 50 blocks)."""

ICON = {
    ChangeKind.DEPLOY: ":rocket:",
    ChangeKind.ROLLBACK: ":rewind:",
    ChangeKind.FREEZE: ":snowflake:",
    ChangeKind.UNFREEZE: ":sunny:",
    ChangeKind.SLEEP: ":zzz:",
    ChangeKind.WAKE: ":alarm_clock:",
    ChangeKind.ENVIRONMENT: ":package:",
    ChangeKind.SLO_ALERT: ":fire:",
    ChangeKind.SLO_RESOLVED: ":white_check_mark:",
}


def line(event: ChangeEvent) -> str:
    who = f", by <@{event.actor}>" if event.actor else ""
    return f"`{event.at:%m-%d %H:%M}` {ICON[event.kind]} {escape(event.text)}{who}"


def rollback_this(event: ChangeEvent) -> dict[str, Any]:
    return button(
        "Roll back this",
        ROLLBACK_THIS,
        value=str(event.deployment_id),
        confirm=confirm_dialog(
            "Roll back this deploy?",
            f"Prepare a rollback of {escape(event.subject)} in {escape(event.environment)} "
            "to the version before this deploy. You confirm it once more.",
            "Prepare rollback",
        ),
    )


def timeline(result: Timeline) -> tuple[str, list[Block]]:
    period = format_duration(result.period)
    count = len(result.events)
    text = f"What changed for {result.title} in the last {period}: {count} change(s)"
    blocks: list[Block] = [header(f"What changed: {result.title}, last {period}")]
    if not result.events:
        blocks.append(section(f"Nothing changed for {escape(result.title)} in the last {period}."))
        return text, blocks
    blocks.append(context("Newest first, times in UTC."))
    for event in result.events[:MAX_EVENTS]:
        accessory = rollback_this(event) if event.deployment_id is not None else None
        blocks.append(section(line(event), accessory=accessory))
    hidden = count - MAX_EVENTS
    if hidden > 0:
        blocks.append(context(f"… {hidden} older change(s) not shown: ask for a shorter period."))
    return text, blocks


def summary_lines(events: list[ChangeEvent], limit: int = 8) -> str:
    """A compact mrkdwn list for cards and alerts."""
    if not events:
        return "_No changes recorded._"
    lines = [line(e) for e in events[:limit]]
    if len(events) > limit:
        lines.append(f"… and {len(events) - limit} more (`/forge changes`)")
    return "\n".join(lines)
