"""Incident card, announcement, role notes, resolve summary, postmortem draft and the form."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from commands.changes.timeline import ChangeEvent
from commands.changes.views import summary_lines
from commands.incidents.parse import DEFAULT_SEVERITY, SEVERITIES, TEXT_MAX, TITLE_MAX
from core.block_limits import escape
from core.durations import format_duration
from integrations.slack.blocks import (
    Block,
    actions,
    button,
    context,
    divider,
    header,
    modal,
    option,
    section,
)
from storage.incidents import Incident, IncidentEvent, IncidentState

TAKE_COMMANDER = "incident_take_commander"
TAKE_COMMUNICATIONS = "incident_take_communications"
OPEN_FORM = "incident_open_form"
ROLES = {"commander": "incident commander", "communications": "communications lead"}

ICON = {"SEV1": ":red_circle:", "SEV2": ":large_orange_circle:", "SEV3": ":large_yellow_circle:"}


def icon(severity: str) -> str:
    return ICON.get(severity, ":white_circle:")


def _who(user: str) -> str:
    return f"<@{user}>" if user else "_nobody yet_"


def _utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _link(incident: Incident) -> str:
    return f"<#{incident.channel_id}>" if incident.channel_id else f"#{incident.channel_name}"


def duration_of(incident: Incident, now: datetime) -> timedelta:
    end = incident.resolved_at or now
    return end - incident.impact_started_at


def card(
    incident: Incident,
    latest_update: IncidentEvent | None,
    changes: list[ChangeEvent],
    now: datetime,
) -> tuple[str, list[Block]]:
    resolved = incident.state == IncidentState.RESOLVED
    status = (
        f":white_check_mark: resolved after {format_duration(duration_of(incident, now))}"
        if resolved
        else f":rotating_light: open for {format_duration(duration_of(incident, now))}"
    )
    prefix = "[RESOLVED] " if resolved else ""
    text = f"{prefix}{incident.severity} incident: {incident.title}"
    blocks: list[Block] = [
        header(f"{prefix}{incident.severity} · {incident.title}"),
        section(
            fields=[
                f"*Status*\n{status}",
                f"*Severity*\n{icon(incident.severity)} {incident.severity}",
                f"*Service*\n{escape(incident.service) or '_not named_'}",
                f"*Team*\n{escape(incident.team)}",
                f"*Commander*\n{_who(incident.commander)}",
                f"*Communications*\n{_who(incident.communications)}",
                f"*Opened*\n{_utc(incident.opened_at)} by <@{incident.opened_by}>",
                f"*Paging*\n{escape(incident.paging) or '_pending_'}",
            ]
        ),
    ]
    if incident.summary:
        blocks.append(section(f"*Summary*\n{escape(incident.summary)}"))
    if latest_update is not None:
        blocks.append(
            section(
                f"*Latest update* ({latest_update.at:%H:%M} UTC, <@{latest_update.actor}>)\n"
                f"{escape(latest_update.text)}"
            )
        )
    if resolved and incident.resolution:
        blocks.append(section(f"*Resolution*\n{escape(incident.resolution)}"))
    blocks.append(divider())
    blocks.append(section(f"*What changed (last 24h)*\n{summary_lines(changes)}"))
    if not resolved:
        value = str(incident.id)
        blocks.append(
            actions(
                button("I'm the commander", TAKE_COMMANDER, value=value, style="primary"),
                button("I'm on comms", TAKE_COMMUNICATIONS, value=value),
                block_id="incident-roles",
            )
        )
        blocks.append(
            context(
                "`/forge incident update TEXT` · `/forge incident severity SEV1` · "
                "`/forge incident resolve [TEXT]` here. Pinned messages and messages marked "
                "with the timeline reaction join the timeline."
            )
        )
    return text, blocks


def announcement(incident: Incident, now: datetime) -> tuple[str, list[Block]]:
    resolved = incident.state == IncidentState.RESOLVED
    if resolved:
        line = (
            f":white_check_mark: *Resolved* {incident.severity} incident *{escape(incident.title)}* "
            f"after {format_duration(duration_of(incident, now))}. Details in {_link(incident)}."
        )
    else:
        service = f" on *{escape(incident.service)}*" if incident.service else ""
        line = (
            f"{icon(incident.severity)} *{incident.severity} incident*{service}: "
            f"*{escape(incident.title)}*, opened by <@{incident.opened_by}>. "
            f"Join {_link(incident)}."
        )
    return line.replace("*", ""), [section(line)]


def role_taken(role: str, user: str) -> str:
    return f":bust_in_silhouette: <@{user}> is now the {ROLES[role]}."


def update_posted(user: str, text: str) -> str:
    return f":loudspeaker: *Update* from <@{user}>: {escape(text)}"


def severity_changed(user: str, before: str, after: str) -> str:
    return f"{icon(after)} <@{user}> changed the severity from {before} to *{after}*."


def _event_line(event: IncidentEvent) -> str:
    who = f"<@{event.actor}> " if event.actor else ""
    return f"`{event.at:%H:%M}` {who}{escape(event.text)}"


def resolve_summary(
    incident: Incident, events: list[IncidentEvent], now: datetime
) -> tuple[str, list[Block]]:
    assert incident.resolved_at is not None
    duration = format_duration(duration_of(incident, now))
    text = f"Incident resolved after {duration}: {incident.title}"
    actions_taken = [e for e in events if e.kind == "action"]
    blocks: list[Block] = [
        header(f"Resolved: {incident.title}"),
        section(
            fields=[
                f"*Duration*\n{duration}",
                f"*Impact window*\n{_utc(incident.impact_started_at)} → "
                f"{_utc(incident.resolved_at)}",
                f"*Severity*\n{incident.severity}",
                f"*Resolved by*\n<@{incident.resolved_by}>",
            ]
        ),
    ]
    if actions_taken:
        lines = "\n".join(_event_line(e) for e in actions_taken[:30])
        more = len(actions_taken) - 30
        if more > 0:
            lines += f"\n… {more} more in the postmortem draft"
        blocks.append(section(f"*Actions taken*\n{lines}"))
    else:
        blocks.append(section("*Actions taken*\n_No forgebot actions were taken in this channel._"))
    blocks.append(context("The postmortem draft (Markdown) with the whole timeline is attached."))
    return text, blocks


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def postmortem(
    incident: Incident, events: list[IncidentEvent], changes: list[ChangeEvent], now: datetime
) -> str:
    """The draft a team finishes: facts filled in, the analysis left to people."""
    assert incident.resolved_at is not None
    people = {e.actor for e in events if e.actor}
    lines = [
        f"# Postmortem: {incident.title}",
        "",
        "_Draft generated by forgebot; the facts are filled in, the analysis is yours._",
        "",
        "| | |",
        "|---|---|",
        f"| Severity | {incident.severity} |",
        f"| Service | {incident.service or 'not named'} |",
        f"| Team | {incident.team} |",
        f"| Opened | {_utc(incident.opened_at)} by {incident.opened_by} |",
        f"| Impact window | {_utc(incident.impact_started_at)} → {_utc(incident.resolved_at)} |",
        f"| Duration (time to restore) | {format_duration(duration_of(incident, now))} |",
        f"| Commander | {incident.commander or 'not set'} |",
        f"| Communications | {incident.communications or 'not set'} |",
        f"| Paging | {incident.paging or 'none'} |",
        f"| Channel | #{incident.channel_name} |",
        f"| People involved | {', '.join(sorted(people)) or 'none recorded'} |",
        "",
        "## Summary",
        "",
        incident.summary or "_What happened, in two or three sentences._",
        "",
        "## Resolution",
        "",
        incident.resolution or "_How service was restored._",
        "",
        "## Timeline (UTC)",
        "",
        "| Time | Who | What |",
        "|---|---|---|",
    ]
    for event in events:
        lines.append(
            f"| {event.at:%Y-%m-%d %H:%M:%S} | {event.actor or 'forgebot'} | {_md(event.text)} |"
        )
    lines += ["", "## What changed before and during the incident", ""]
    if changes:
        for change in changes:
            who = f" (by {change.actor})" if change.actor else ""
            lines.append(f"- {change.at:%Y-%m-%d %H:%M} {change.text}{who}")
    else:
        lines.append("- No changes recorded in the 24 hours before the incident.")
    lines += [
        "",
        "## Root cause",
        "",
        "_Why it happened; ask why until the answer is a system, not a person._",
        "",
        "## What went well / what went badly",
        "",
        "- ",
        "",
        "## Action items",
        "",
        "| Action | Owner | Ticket |",
        "|---|---|---|",
        "| | | |",
        "",
    ]
    return "\n".join(lines)


def open_form(services: list[str], channel: str) -> dict[str, Any]:
    service_options = [option(s, s) for s in services[:100]]
    blocks: list[Block] = [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {
                "type": "plain_text_input",
                "action_id": "title",
                "max_length": TITLE_MAX,
                "placeholder": {"type": "plain_text", "text": "Checkout returns 500s"},
            },
        },
        {
            "type": "input",
            "block_id": "severity",
            "label": {"type": "plain_text", "text": "Severity"},
            "element": {
                "type": "static_select",
                "action_id": "severity",
                "options": [option(s, s) for s in SEVERITIES],
                "initial_option": option(DEFAULT_SEVERITY, DEFAULT_SEVERITY),
            },
        },
    ]
    if service_options:
        blocks.append(
            {
                "type": "input",
                "block_id": "service",
                "optional": True,
                "label": {"type": "plain_text", "text": "Service"},
                "element": {
                    "type": "static_select",
                    "action_id": "service",
                    "options": service_options,
                },
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": "summary",
            "optional": True,
            "label": {"type": "plain_text", "text": "Summary"},
            "element": {
                "type": "plain_text_input",
                "action_id": "summary",
                "multiline": True,
                "max_length": TEXT_MAX,
            },
        }
    )
    return modal(
        "Open an incident",
        blocks,
        callback_id=OPEN_FORM,
        submit="Open incident",
        private_metadata=channel,
    )
