"""SLO report, burn-rate alert and gate summary as text and Block Kit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.durations import format_duration
from bot.times import DATE_TIME
from bot.times import shown as shown_time
from commands.slo.alerts import LastDeploy
from commands.slo.budget import Alert, Severity, SloFigures, Status
from commands.slo.service import SloReport
from integrations.slack.blockkit import escape

STATUS_ICON = {
    Status.CRITICAL: ":red_circle:",
    Status.WARNING: ":large_yellow_circle:",
    Status.OK: ":large_green_circle:",
    Status.NO_DATA: ":white_circle:",
    Status.ERROR: ":warning:",
}
BARS = "▁▂▃▄▅▆▇█"
MAX_SECTIONS = 45

SHOW_SLO = "slo_show"
ROLLBACK = "slo_rollback"
FREEZE = "slo_freeze"


def percent(value: float) -> str:
    """Enough digits to tell 99.95 % from 99.9 %, never rounding a miss up to the objective."""
    text = f"{value * 100:.3f}".rstrip("0").rstrip(".")
    return f"{text}%"


def sparkline(daily: list[float | None], window: timedelta) -> str:
    """One bar per day; the height is that day's burn rate (1x spends the budget exactly over
    the window): ▁ under 0.5x, then 1x, 2x, 4x, 8x, 16x, 32x and █ above."""
    days = max(1.0, window / timedelta(days=1))
    bars = []
    for share in daily:
        if share is None:
            bars.append("·")
            continue
        burn = share * days
        level = 0
        for threshold in (0.5, 1, 2, 4, 8, 16, 32):
            if burn > threshold:
                level += 1
        bars.append(BARS[level])
    return "".join(bars)


def window_label(window: timedelta) -> str:
    """`24h` rather than `1d` below three days: how burn-rate windows are usually named."""
    hours = window / timedelta(hours=1)
    if window < timedelta(days=3) and hours == int(hours) and hours >= 1:
        return f"{int(hours)}h"
    return format_duration(window)


def _burns(item: SloFigures) -> str:
    parts = []
    for window, burn in item.burn.items():
        if window in (
            timedelta(hours=1),
            timedelta(hours=6),
            timedelta(hours=24),
            timedelta(days=3),
        ):
            shown = "–" if burn is None else f"{burn:.1f}x"
            parts.append(f"{window_label(window)} {shown}")
    return " · ".join(parts)


def slo_lines(item: SloFigures) -> str:
    slo = item.ref.slo
    head = (
        f"{STATUS_ICON[item.status]} *{escape(item.ref.key)}* {item.status}: objective "
        f"{slo.objective:g}% over {format_duration(slo.window)}"
    )
    if item.status in (Status.NO_DATA, Status.ERROR):
        return f"{head}\n{escape(item.note)}"
    assert item.sli is not None and item.budget_remaining is not None
    assert item.budget_minutes is not None
    lines = [
        head,
        f"SLI {percent(item.sli)} · error budget left {item.budget_remaining * 100:.0f}% "
        f"({item.budget_minutes:.1f} of {item.budget_total_minutes:.1f} min of full outage)",
        f"burn {_burns(item)}",
        f"daily budget use `{sparkline(item.trend, slo.window)}`",
    ]
    if item.alert is not None:
        lines.append(f":rotating_light: {item.alert.severity}: {item.alert.describe()}")
    return "\n".join(lines)


def _pack(lines: list[str], limit: int = 2900) -> list[str]:
    """A service's SLO texts in as few sections as fit Slack's 3000 characters each."""
    bodies: list[str] = []
    for line in lines:
        cut = line[:limit]
        if bodies and len(bodies[-1]) + 2 + len(cut) <= limit:
            bodies[-1] += "\n\n" + cut
        else:
            bodies.append(cut)
    return bodies


def slo_report(report: SloReport) -> tuple[str, list[dict[str, Any]]]:
    worst = report.items[0].status if report.items else Status.OK
    title = f"SLOs for {report.scope}"
    text = f"{title}: {len(report.items)} SLOs, worst {worst}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}
    ]
    # One section per service keeps a 20-service team inside Slack's 50-block limit.
    sections: dict[str, list[str]] = {}
    for item in report.items:
        sections.setdefault(item.ref.service, []).append(slo_lines(item))
    shown = 0
    for lines in sections.values():
        bodies = _pack(lines)
        if len(blocks) - 1 + len(bodies) > MAX_SECTIONS:
            break
        shown += 1
        blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": b}} for b in bodies)
    note = f"As of {shown_time(report.at, DATE_TIME)}. Burn 1x spends the budget exactly over the window."
    if len(sections) > shown:
        note += f" {len(sections) - shown} more services not shown: ask for one by name."
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return text, blocks


def alert_message(
    item: SloFigures, alert: Alert, deploy: LastDeploy | None
) -> tuple[str, list[dict[str, Any]]]:
    icon = ":rotating_light:" if alert.severity is Severity.PAGE else ":warning:"
    slo = item.ref.slo
    text = f"{icon} {item.ref.key} is burning its error budget ({alert.severity})"
    detail = slo_lines(item)
    buttons: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": SHOW_SLO,
            "text": {"type": "plain_text", "text": "Show SLO"},
            "value": item.ref.service,
        }
    ]
    if deploy is not None:
        buttons.append(
            {
                "type": "button",
                "action_id": ROLLBACK,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Roll back last deploy"},
                "value": f"{item.ref.service}|{slo.environment}",
            }
        )
    buttons.append(
        {
            "type": "button",
            "action_id": FREEZE,
            "text": {"type": "plain_text", "text": "Freeze deploys"},
            "value": f"{slo.environment}|{item.ref.key}",
        }
    )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{escape(text)}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": detail[:2990]}},
    ]
    if deploy is not None:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"Last deploy in {escape(slo.environment)} within the alert "
                        f"window: {escape(deploy.version)} by <@{deploy.actor}>",
                    }
                ],
            }
        )
    blocks.append({"type": "actions", "elements": buttons})
    return text, blocks


def resolved_message(
    key: str, severity: str, lasted: timedelta
) -> tuple[str, list[dict[str, Any]]]:
    text = f":white_check_mark: Resolved: {key} is no longer burning its error budget ({severity})"
    return text, [
        {"type": "section", "text": {"type": "mrkdwn", "text": escape(text)}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"The alert held for {format_duration(lasted)}."}
            ],
        },
    ]


def home_section(team: str, items: list[SloFigures] | None) -> list[dict[str, Any]]:
    """A few lines on the App Home tab: the team's SLOs by status, the worst three named."""
    if items is None:
        summary = f"*SLOs of {escape(team)}*: SLO data unavailable right now."
        return [{"type": "section", "text": {"type": "mrkdwn", "text": summary}}]
    counts = {status: sum(1 for i in items if i.status is status) for status in Status}
    tally = ", ".join(f"{STATUS_ICON[status]} {n} {status}" for status, n in counts.items() if n)
    lines = [f"*SLOs of {escape(team)}*: {tally}"]
    for item in items[:3]:
        if item.status in (Status.CRITICAL, Status.WARNING):
            left = item.budget_remaining
            figure = f", budget left {left * 100:.0f}%" if left is not None else ""
            lines.append(f"{STATUS_ICON[item.status]} {escape(item.ref.key)} {item.status}{figure}")
    lines.append(f"`/slo {escape(team)}` for the figures.")
    return [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
