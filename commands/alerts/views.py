"""One alert message shape for Alertmanager groups and forgebot's own burn-rate alerts: what
fires, where, who acknowledged or silenced it, what changed, SLO state, runbook, and buttons."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from commands.changes.timeline import ChangeEvent
from commands.changes.views import summary_lines
from core.block_limits import escape
from integrations.slack.blocks import (
    Block,
    actions,
    button,
    confirm_dialog,
    context,
    header,
    section,
)

ACKNOWLEDGE = "alert_acknowledge"
SILENCE_1H = "alert_silence_1h"
SILENCE_4H = "alert_silence_4h"
ROLL_BACK_LAST = "alert_rollback_last"
OPEN_INCIDENT = "alert_open_incident"
MAX_ALERT_LINES = 15


@dataclass(frozen=True)
class AlertLine:
    firing: bool
    text: str
    since: datetime | None = None


@dataclass(frozen=True)
class AlertView:
    """Everything an alert message shows; built from an alert group or an SLO episode."""

    title: str
    firing: bool
    lines: list[AlertLine]
    team: str
    service: str
    environment: str
    severity: str
    hidden: int = 0
    """Alerts not listed (Alertmanager's truncatedAlerts, or past MAX_ALERT_LINES)."""
    acknowledged: str = ""
    silences: list[str] = field(default_factory=list)
    slo: str = ""
    changes: list[ChangeEvent] | None = None
    runbook: str = ""
    source_link: str = ""
    buttons: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """mrkdwn context lines (e.g. the last deploy inside a burn-rate alert's window)."""
    text: str = ""
    """The notification text, when the source has its own wording."""


def group_buttons(group_id: int, service: str, environment: str) -> list[dict[str, Any]]:
    value = str(group_id)
    elements = [
        button("Acknowledge", ACKNOWLEDGE, value=value, style="primary"),
        button("Silence 1h", SILENCE_1H, value=value),
        button("Silence 4h", SILENCE_4H, value=value),
    ]
    if service and environment:
        elements.append(
            button(
                "Roll back last deploy",
                ROLL_BACK_LAST,
                value=f"{service}|{environment}",
                style="danger",
                confirm=confirm_dialog(
                    "Roll back?",
                    f"Prepare a rollback of {escape(service)} in {escape(environment)} to the "
                    "revision before its last deploy. You confirm it once more.",
                    "Prepare rollback",
                ),
            )
        )
    elements.append(button("Open incident", OPEN_INCIDENT, value=value))
    return elements


def alert_message(view: AlertView) -> tuple[str, list[Block]]:
    firing = [line for line in view.lines if line.firing]
    status = f":fire: FIRING ({len(firing)})" if view.firing else ":white_check_mark: RESOLVED"
    where = f" · {view.service}" if view.service else ""
    text = view.text or f"{'FIRING' if view.firing else 'RESOLVED'}: {view.title}{where}"
    blocks: list[Block] = [header(f"{view.title}{where}"[:150])]
    shown = view.lines[:MAX_ALERT_LINES]
    listed = "\n".join(
        f"{':red_circle:' if line.firing else ':white_check_mark:'} {escape(line.text)}"
        + (f" _(since {line.since:%H:%M} UTC)_" if line.since else "")
        for line in shown
    )
    hidden = view.hidden + max(0, len(view.lines) - MAX_ALERT_LINES)
    if hidden:
        listed += f"\n… and {hidden} more"
    blocks.append(section(f"*{status}*\n{listed}" if listed else f"*{status}*"))
    fields = [
        f"*Team*\n{escape(view.team) or '_unknown_'}",
        f"*Service*\n{escape(view.service) or '_unknown_'}",
        f"*Environment*\n{escape(view.environment) or '_unknown_'}",
        f"*Severity*\n{escape(view.severity) or '_none_'}",
    ]
    if view.acknowledged:
        fields.append(f"*Acknowledged*\n{view.acknowledged}")
    if view.silences:
        fields.append("*Silenced*\n" + "\n".join(view.silences[-3:]))
    blocks.append(section(fields=fields))
    if view.slo:
        blocks.append(section(f"*SLO*\n{view.slo}"))
    if view.changes is not None:
        blocks.append(section(f"*What changed (last 6h)*\n{summary_lines(view.changes, 5)}"))
    if view.notes:
        blocks.append(context(*view.notes))
    links = []
    if view.runbook:
        links.append(f"<{view.runbook}|:book: Runbook>")
    if view.source_link:
        links.append(f"<{view.source_link}|Alertmanager>")
    if links:
        blocks.append(context("  ·  ".join(links)))
    if view.buttons and view.firing:
        blocks.append(actions(*view.buttons[:25], block_id="alert-actions"))
    return text, blocks
