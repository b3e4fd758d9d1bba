"""SLO report, burn-rate alert and gate summary as text and Block Kit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from commands.alerts.views import AlertLine, AlertView
from commands.alerts.views import alert_message as alert_view_message
from commands.slo.alerts import LastDeploy
from commands.slo.budget import Alert, Severity, SloFigures, Status
from commands.slo.service import SloReport
from core.block_limits import escape
from core.durations import format_duration
from core.times import DATE_TIME
from core.times import shown as shown_time

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
        f"SLI {percent(item.sli)} over {format_duration(slo.window)} in {escape(slo.environment)}"
        f" · error budget left {item.budget_remaining * 100:.0f}% "
        f"({item.budget_minutes:.1f} of {item.budget_total_minutes:.1f} min of full outage)",
        f"burn (error ratio over the window ÷ allowed) {_burns(item)}",
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
    note = (
        f"Source: Prometheus, as of {shown_time(report.at, DATE_TIME)}. Burn 1x spends the "
        "budget exactly over the SLO window; alerts fire only strictly above their factor."
    )
    if len(sections) > shown:
        note += f" {len(sections) - shown} more services not shown: ask for one by name."
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return text, blocks


def _button(action_id: str, label: str, value: str, danger: bool = False) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }
    if danger:
        element["style"] = "danger"
    return element


def alert_message(
    item: SloFigures, alert: Alert, deploy: LastDeploy | None, team: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """The burn-rate alert in the same message shape as Alertmanager's alert groups."""
    icon = ":rotating_light:" if alert.severity is Severity.PAGE else ":warning:"
    slo = item.ref.slo
    text = f"{icon} {item.ref.key} is burning its error budget ({alert.severity})"
    buttons = [_button(SHOW_SLO, "Show SLO", item.ref.service)]
    notes = []
    if deploy is not None:
        buttons.append(
            _button(
                ROLLBACK,
                "Roll back last deploy",
                f"{item.ref.service}|{slo.environment}",
                danger=True,
            )
        )
        notes.append(
            f"Last deploy in {escape(slo.environment)} within the alert window: "
            f"{escape(deploy.version)} by <@{deploy.actor}>"
        )
    buttons.append(_button(FREEZE, "Freeze deploys", f"{slo.environment}|{item.ref.key}"))
    view = AlertView(
        title=f"{item.ref.key} error budget burn",
        firing=True,
        lines=[AlertLine(True, f"{alert.severity}: {alert.describe()}")],
        team=team,
        service=item.ref.service,
        environment=slo.environment,
        severity=str(alert.severity),
        slo=slo_lines(item)[:2990],
        buttons=buttons,
        notes=notes,
        text=text,
    )
    return alert_view_message(view)


def resolved_message(
    key: str, severity: str, lasted: timedelta, team: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    text = f":white_check_mark: Resolved: {key} is no longer burning its error budget ({severity})"
    service, _, _ = key.partition("/")
    view = AlertView(
        title=f"{key} error budget burn",
        firing=False,
        lines=[AlertLine(False, f"{severity}: no longer burning")],
        team=team,
        service=service,
        environment="",
        severity=severity,
        notes=[f"The alert held for {format_duration(lasted)}."],
        text=text,
    )
    return alert_view_message(view)


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
