"""The App Home tab. Capabilities add their own sections through `HomeSection` providers."""

from __future__ import annotations

from typing import Any

from core.router import TOP_COMMAND


def home_view(
    user_id: str, team_names: list[str], sections: list[list[dict[str, Any]]]
) -> dict[str, Any]:
    teams = (
        ", ".join(f"*{t}*" for t in team_names) or "no team yet (ask the platform team to add you)"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "forgebot"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"Hi <@{user_id}>. Your teams: {teams}."},
        },
    ]
    for section in sections:
        blocks.append({"type": "divider"})
        blocks.extend(section)
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Type `{TOP_COMMAND} help` in any channel for every command.",
                }
            ],
        }
    )
    return {"type": "home", "blocks": blocks[:100]}
