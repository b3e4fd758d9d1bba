"""Messages of the deploy capability."""

from __future__ import annotations

from typing import Any

from commands.deploy.freeze import FreezeState
from commands.deploy.history import HistoryLine
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
