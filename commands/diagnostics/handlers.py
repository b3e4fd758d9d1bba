"""`/forge status|pods|events|logs SERVICE ENV ...`: ephemeral answers; long logs go to the
asker's DM as a file (a file shared in a channel would be seen by everyone there)."""

from __future__ import annotations

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.deploy.freeze import FreezeService
from commands.diagnostics import parse, views
from commands.diagnostics.service import DiagnosticsService
from commands.slo.service import SloService
from core.durations import format_duration
from core.router import Ack, Invocation, Subcommand, ephemeral


def register(ctx: AppContext, slos: SloService) -> DiagnosticsService:
    service = DiagnosticsService(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.auth,
        ctx.kube,
        slos,
        FreezeService(ctx.catalog, ctx.db, ctx.clock, ctx.auth),
    )

    async def status(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        asked = parse.parse(invocation.args, ctx.catalog)
        service.identity(invocation.actor, asked)  # refused in the ack, before any work
        await ack()
        text, blocks = views.status(await service.status(invocation.actor, asked))
        await respond(**ephemeral(text, blocks))

    async def pods(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        asked = parse.parse(invocation.args, ctx.catalog)
        service.identity(invocation.actor, asked)
        await ack()
        lines = await service.pods(invocation.actor, asked)
        await respond(**ephemeral(*views.pods(f"{asked.service} in {asked.environment}", lines)))

    async def events(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        asked = parse.parse(invocation.args, ctx.catalog)
        service.identity(invocation.actor, asked)
        await ack()
        lines = await service.events(invocation.actor, asked)
        title = f"{asked.service} in {asked.environment}"
        await respond(**ephemeral(*views.events(title, lines, format_duration(asked.since))))

    async def logs(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        asked = parse.parse(invocation.args, ctx.catalog)
        service.identity(invocation.actor, asked)
        await ack()
        result = await service.logs(invocation.actor, asked)
        title = f"{asked.service} in {asked.environment}"
        if views.fits_inline(result.text):
            await respond(**ephemeral(*views.logs_inline(title, result.text, result.notes)))
            return
        channel = await ctx.slack.dm_channel(invocation.actor.user_id)
        await ctx.slack.upload_file(
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

    for name, summary, usage, handler in (
        (
            "status",
            "a service's version, rollout, pods, warnings, SLOs, deploys, freeze",
            "status SERVICE ENV",
            status,
        ),
        ("pods", "a service's pods: ready, restarts and why", "pods SERVICE ENV", pods),
        ("events", "a service's recent Warning events", "events SERVICE ENV [--since 1h]", events),
        (
            "logs",
            "a service's logs, secrets redacted",
            "logs SERVICE ENV [--since 15m] [--container C] [--previous] [--pod NAME]",
            logs,
        ),
    ):
        ctx.router.add(
            Subcommand(
                name=name,
                summary=summary,
                usage=[usage],
                handler=handler,
                examples=[f"/forge {name} checkout prod"],
            )
        )
    return service
