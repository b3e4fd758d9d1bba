"""`/forge status|pods|events|logs SERVICE ENV ...`: ephemeral answers; long logs go to the
asker's DM as a file (a file shared in a channel would be seen by everyone there)."""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.diagnostics import parse, views
from commands.diagnostics.service import DiagnosticsService
from core.durations import format_duration
from core.router import Ack, CommandHandler, Invocation, Subcommand, ephemeral
from integrations.slack.web import SlackOutbox


async def _asked(service: DiagnosticsService, invocation: Invocation, ack: Ack) -> parse.Target:
    """The preamble every diagnostic shares: bad input and refusals answer in the ack."""
    asked = parse.parse(invocation.args, service.catalog)
    service.identity(invocation.actor, asked)  # refused in the ack, before any work
    await ack()
    return asked


async def status(
    service: DiagnosticsService, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    asked = await _asked(service, invocation, ack)
    text, blocks = views.status(await service.status(invocation.actor, asked))
    await respond(**ephemeral(text, blocks))


async def pods(
    service: DiagnosticsService, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    asked = await _asked(service, invocation, ack)
    lines = await service.pods(invocation.actor, asked)
    await respond(**ephemeral(*views.pods(f"{asked.service} in {asked.environment}", lines)))


async def events(
    service: DiagnosticsService, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    asked = await _asked(service, invocation, ack)
    lines = await service.events(invocation.actor, asked)
    title = f"{asked.service} in {asked.environment}"
    await respond(**ephemeral(*views.events(title, lines, format_duration(asked.since))))


async def logs(
    service: DiagnosticsService,
    slack: SlackOutbox,
    invocation: Invocation,
    ack: Ack,
    respond: AsyncRespond,
) -> None:
    asked = await _asked(service, invocation, ack)
    result = await service.logs(invocation.actor, asked)
    title = f"{asked.service} in {asked.environment}"
    if views.fits_inline(result.text):
        await respond(**ephemeral(*views.logs_inline(title, result.text, result.notes)))
        return
    channel = await slack.dm_channel(invocation.actor.user_id)
    await slack.upload_file(
        channel,
        f"{asked.service}-{asked.environment}.log",
        result.text,
        f"Logs of {title}",
        initial_comment=(
            f"Logs of {title}, last {format_duration(asked.since)} ({result.pods} pods)"
        ),
    )
    notes = "".join(f"\n• {n}" for n in result.notes[:10])
    await respond(
        **ephemeral(
            f":page_facing_up: {len(result.text.splitlines())} log lines from "
            f"{result.pods} pods: sent to you as a file in your DM with forgebot.{notes}"
        )
    )


def _subcommand(name: str, summary: str, usage: str, handler: CommandHandler) -> Subcommand:
    return Subcommand(
        name=name,
        summary=summary,
        usage=[usage],
        handler=handler,
        examples=[f"/forge {name} checkout prod"],
    )


def register(app: AsyncApp, ctx: AppContext) -> None:
    service = ctx.diagnostics
    ctx.router.add(
        _subcommand(
            "status",
            "a service's version, rollout, pods, warnings, SLOs, deploys, freeze",
            "status SERVICE ENV",
            partial(status, service),
        ),
        _subcommand(
            "pods",
            "a service's pods: ready, restarts and why",
            "pods SERVICE ENV",
            partial(pods, service),
        ),
        _subcommand(
            "events",
            "a service's recent Warning events",
            "events SERVICE ENV [--since 1h]",
            partial(events, service),
        ),
        _subcommand(
            "logs",
            "a service's logs, secrets redacted",
            "logs SERVICE ENV [--since 15m] [--container C] [--previous] [--pod NAME]",
            partial(logs, service, ctx.slack),
        ),
    )
