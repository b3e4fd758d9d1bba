"""The first second of `forgebot demo` in a terminal: the banner and the prompt, before the
bot's heavy stacks (SQLAlchemy, slack-bolt, kubernetes, boto3, aiohttp) are even imported.

A newcomer can read and type at once; the bot loads and starts behind the prompt (the imports
on a worker thread, so Ctrl-C still answers) and runs what was typed as soon as it is up.
Scripts and pipes go straight to `bot.shell.run_demo`, whose output must not depend on timing.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from typing import Any, TextIO

from bot.shell_input import LineSource

DEMO_USER = "U0DEVELOPER"
DEMO_CHANNEL = "payments"


def banner(catalog_name: str) -> str:
    return (
        "forgebot demo: a sandbox with a fake Slack and the example catalog "
        f"({catalog_name}). Users: U0DEVELOPER (payments developer), U0ONCALL (payments on-call), "
        "U0PLATFORM (platform team)."
    )


def welcome(user: str, channel: str = DEMO_CHANNEL) -> str:
    return f"forgebot shell: you are {user} in #{channel}. Type :help for help."


def _load_the_bot() -> Any:
    """The heavy imports (on a worker thread): the shell, and the bot it runs."""
    importlib.import_module("bot.runtime")
    return importlib.import_module("bot.shell")


async def launch_demo(
    *, script: str | None, user: str | None, keep: bool, stdin: TextIO | None = None
) -> int:
    started = time.monotonic()
    source = stdin or sys.stdin
    if script is not None or not source.isatty():
        shell = importlib.import_module("bot.shell")
        code: int = await shell.run_demo(script=script, user=user, keep=keep, stdin=stdin)
        return code
    who = user or DEMO_USER
    print(banner("catalog.example.yaml"))
    print(
        "Starting the fake Kubernetes API and Slack and the bot (on SQLite) behind the prompt: "
        "type a command now, it runs as soon as the bot is up."
    )
    print(welcome(who))
    lines = LineSource.open(source, None)
    lines.catch_interrupts()
    sys.stdout.write(f"{who}> ")
    sys.stdout.flush()
    try:
        shell = await asyncio.to_thread(_load_the_bot)
        code = await shell.run_demo(
            script=None,
            user=who,
            keep=keep,
            stdin=source,
            lines=lines,
            started=started,
        )
        return code
    finally:
        lines.release_interrupts()
