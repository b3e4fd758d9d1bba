"""Block Kit for off-hours: the reminder with its three buttons, state changes, alerts, status
and the savings report. Pure functions from data to dicts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from commands.offhours.report import SavingsLine
from core.block_limits import escape
from core.clock import utc
from core.pricing import money
from core.text import plural
from integrations.slack.blocks import Block, actions, button, context, section
from storage.offhours import OffhoursSetting

KEEP, SKIP, SLEEP = "offhours_keep", "offhours_skip", "offhours_sleep"
CHOICES = {KEEP: "keep", SKIP: "skip", SLEEP: "sleep"}


def local(when: datetime, zone: str) -> str:
    return f"{when.astimezone(ZoneInfo(zone)):%H:%M} {zone}"


def local_day(when: datetime, zone: str) -> str:
    return f"{when.astimezone(ZoneInfo(zone)):%a %H:%M} {zone}"


def reminder(
    environment: str, shutdown_at: datetime, zone: str, keep_until: datetime
) -> tuple[str, list[Block]]:
    text = f"{environment} sleeps at {local(shutdown_at, zone)}"
    value = f"{environment}|{shutdown_at.isoformat()}"
    keep_label = f"Keep running until {keep_until.astimezone(ZoneInfo(zone)):%H:%M}"
    return text, [
        section(
            f":crescent_moon: *{escape(environment)}* sleeps at *{local(shutdown_at, zone)}*: "
            "its workloads scale to 0 and wake up exactly as they were."
        ),
        actions(
            button(keep_label, KEEP, value=value, style="primary"),
            button("Skip tonight", SKIP, value=value),
            button("Sleep now", SLEEP, value=value, style="danger"),
            block_id=f"offhours-{environment}"[:255],
        ),
    ]


def changed(
    environment: str, acted: str, changed_count: int, zone: str, next_change: datetime | None
) -> str:
    when = f" until {local_day(next_change, zone)}" if next_change else ""
    if acted == "slept":
        return (
            f":zzz: *{escape(environment)}* is asleep{when}: {plural(changed_count, 'object')} scaled "
            "down, originals recorded. `/forge env wake "
            f"{escape(environment)} for 2h` wakes it on demand."
        )
    return (
        f":sunny: *{escape(environment)}* is awake{when}: {plural(changed_count, 'object')} restored "
        "to their recorded counts."
    )


def alert(environment: str, what: str, error: str) -> str:
    return (
        f":warning: forgebot could not {what} *{escape(environment)}*: {escape(error)}. "
        "It keeps retrying every few minutes; the recorded replica counts are safe."
    )


def override_text(setting: OffhoursSetting, now: datetime, zone: str) -> str:
    if setting.override_up is None or setting.override_until is None:
        return ""
    until = utc(setting.override_until)
    if until <= now:
        return ""
    held = "awake" if setting.override_up else "asleep"
    who = f" by <@{setting.override_by}>" if setting.override_by.startswith(("U", "W")) else ""
    why = f" ({escape(setting.override_reason)})" if setting.override_reason else ""
    return f"Held {held} until {local_day(until, zone)}{who}{why}."


def status(
    environment: str,
    schedule_text: str,
    source: str,
    state: str,
    next_change: datetime | None,
    zone: str,
    override: str,
) -> str:
    lines = [
        f"*{escape(environment)}* is {state}.",
        f"Schedule: `{escape(schedule_text)}` (from the {source})",
    ]
    if next_change:
        lines.append(f"Next change: {local_day(next_change, zone)}")
    if override:
        lines.append(override)
    return "\n".join(lines)


def report(scope: str, period: timedelta, lines: Sequence[SavingsLine]) -> tuple[str, list[Block]]:
    days = int(period.total_seconds() // 86400)
    title = f"Off-hours savings for {scope}, last {days}d"
    if not lines:
        return title, [section(f"*{escape(title)}*\nNothing slept in this period.")]
    currency = lines[0].currency
    total = sum((line.saved for line in lines), Decimal(0))
    hours = sum((line.hours for line in lines), Decimal(0))
    rows = [
        f"• *{escape(line.environment)}* ({escape(line.team)}): {line.hours:.1f} h asleep, "
        f"≈ {money(line.saved, line.currency)} saved"
        for line in lines[:40]
    ]
    more = [f"…and {len(lines) - 40} more"] if len(lines) > 40 else []
    summary = f"{hours:.1f} h asleep in all, ≈ {money(total, currency)} saved"
    return f"{title}: {summary}", [
        section(f"*{escape(title)}*\n" + "\n".join(rows + more)),
        context(f"{summary}. Priced at each environment's quota x the catalog's unit prices."),
    ]


def weekly(team: str, lines: Sequence[SavingsLine]) -> tuple[str, list[Block]]:
    text, blocks = report(team, timedelta(days=7), lines)
    return f":crescent_moon: Weekly off-hours summary: {text}", blocks


def message_blocks(text: str) -> list[dict[str, Any]]:
    return [section(text)]


def home_section(states: Sequence[tuple[str, str]]) -> list[Block]:
    """The Home tab's off-hours line: each of the user's environments, awake or asleep."""
    if not states:
        return []
    icons = {"asleep": ":zzz:", "awake": ":sunny:"}
    lines = [f"{icons.get(state, '')} *{escape(name)}* {state}" for name, state in states[:30]]
    return [section("*Off-hours*\n" + "\n".join(lines))]
