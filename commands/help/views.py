"""Help text as Block Kit: the overview, and one subcommand's usage."""

from __future__ import annotations

from typing import Any

from core.block_limits import truncate
from core.router import TOP_COMMAND, Subcommand


def overview(subcommands: list[Subcommand]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": "forgebot: your platform in Slack"},
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "Request environments, deploy and roll back, check SLOs and cost. "
                f"Every command is `{TOP_COMMAND} <command>`; most also have a short alias.",
            },
        },
        {"type": "divider"},
    ]
    for sub in sorted(subcommands, key=lambda s: s.name):
        lines = [f"*{sub.name}*: {sub.summary}", sub.usage_text()]
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": truncate("\n".join(lines), 3000)},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"`{TOP_COMMAND} help <command>` shows examples."}
            ],
        }
    )
    return blocks


def detail(sub: Subcommand) -> list[dict[str, Any]]:
    text = f"*{TOP_COMMAND} {sub.name}*: {sub.summary}\n*Usage:*\n{sub.usage_text()}"
    if sub.examples:
        text += "\n*Examples:*\n" + "\n".join(f"`{e}`" for e in sub.examples)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 3000)}}]
