"""Slack listeners for `/forge cost` (alias `/cost`) and `/forge budget`, the daily budget
job, and the actual-cost line other capabilities show for environments."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.context import AppContext
from commands.cost import chart, parse, views
from commands.cost.alerts import BudgetAlerts
from commands.cost.cache import CostCache
from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import Period
from commands.cost.service import BudgetLine, CostNotConfigured, CostService, CostSummary
from commands.cost.untagged import UntaggedCost, UntaggedSpend
from core.auth import Action
from core.errors import ForgebotError, NotAuthorized
from core.router import Ack, Invocation, Subcommand, ephemeral, usage_lines
from core.scheduler import JobSpec

log = logging.getLogger(__name__)

BUDGET_JOB_EVERY = timedelta(minutes=15)
"""How often the budget job looks at the clock; it acts once a day, at the alert time."""
CACHE_PURGE_EVERY = timedelta(hours=6)
CHART_BUDGET_PERIODS = (Period.THIS_MONTH, Period.LAST_MONTH, Period.LAST_30_DAYS)


def register(ctx: AppContext) -> CostService | None:
    if ctx.cost_source is None:
        return None
    catalog = ctx.catalog
    cache = CostCache(ctx.db, ctx.clock, ctx.settings.cost_cache_ttl)
    service = CostService(
        catalog=catalog,
        db=ctx.db,
        clock=ctx.clock,
        source=ctx.cost_source,
        cache=cache,
        forecast_mode=ctx.settings.cost_forecast,
    )
    untagged_cost = UntaggedCost(catalog=catalog, source=ctx.cost_source, cache=cache)

    async def last_untagged(scope: Scope) -> UntaggedSpend | None:
        if scope.kind is not ScopeKind.TEAM:
            return None
        try:
            return await untagged_cost.last_known()
        except Exception:  # a line of context; the cost itself is already answered
            log.warning("could not read the last untagged spend", exc_info=True)
            return None

    async def cost(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        command = parse.parse_cost(invocation.args, catalog)
        scope = command.scope or service.default_scope(
            [t.name for t in ctx.auth.teams_of(invocation.actor.user_id)]
        )
        summary = service.summary_from_memory(scope, command.period)
        if summary is not None:
            # Everything is in memory (a few milliseconds, no I/O): the ack is the answer,
            # with the untagged spend if this process holds it.
            untagged = untagged_cost.in_memory() if scope.kind is ScopeKind.TEAM else None
            text, blocks = views.cost_summary(summary, ctx.clock.now(), untagged)
            await ack(**ephemeral(text, blocks))
        else:
            await ack()
            summary = await service.summary(scope, command.period)
            untagged = await last_untagged(scope)
            text, blocks = views.cost_summary(summary, ctx.clock.now(), untagged)
            await respond(**ephemeral(text, blocks))
        if command.chart:
            await _upload_chart(invocation.channel_id, summary)

    async def _upload_chart(channel: str, summary: CostSummary) -> None:
        budget = (
            summary.budget.monthly
            if summary.budget and summary.period in CHART_BUDGET_PERIODS
            else None
        )
        current = summary.window.current
        title = f"{summary.scope.describe()}, {summary.period.label}"
        png = await asyncio.to_thread(
            chart.render_png, title, summary.daily, currency=summary.currency, budget=budget
        )
        try:
            await ctx.slack.upload_file(
                channel,
                f"cost-{summary.scope.kind.value}-{summary.scope.name}-{current.start}.png",
                png,
                f"Daily cost of {title}",
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "error")
            hint = " Invite me with `/invite @forgebot`." if error == "not_in_channel" else ""
            raise ForgebotError(f"I could not post the chart here ({error}).{hint}") from None

    async def budget(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        command = parse.parse_budget(invocation.args, catalog)
        if command.verb == "set":
            decision = ctx.auth.authorize(invocation.actor, Action.BUDGET_SET)
            if not decision.allowed:
                raise NotAuthorized(decision.explain(Action.BUDGET_SET))
            await ack()
            before = await service.set_budget(
                command.team, command.amount, invocation.actor.user_id
            )
            await respond(**ephemeral(views.budget_set(command.team, command.amount, before)))
            return
        await ack()
        rows: list[tuple[BudgetLine, CostSummary | None, str | None]] = []
        # One after another: each is one cached query, and AWS throttles bursts anyway.
        for line in await service.budgets():
            try:
                rows.append((line, await service.summary(line.scope, Period.THIS_MONTH), None))
            except ForgebotError as exc:
                rows.append((line, None, str(exc)))
        untagged: UntaggedSpend | None = None
        problem: str | None = None
        try:
            untagged = await untagged_cost.refresh(service.today())
        except ForgebotError as exc:
            problem = str(exc)
        text, blocks = views.budget_list(
            rows, untagged=untagged, untagged_problem=problem, now=ctx.clock.now()
        )
        await respond(**ephemeral(text, blocks))

    ctx.router.add(
        Subcommand(
            name="cost",
            summary="cloud cost by team, service or environment, with forecast and budget",
            usage=usage_lines(parse.COST_USAGE),
            handler=cost,
            examples=["/cost", "/cost team payments last-month", "/cost service checkout 7d chart"],
        )
    )
    ctx.router.add(
        Subcommand(
            name="budget",
            summary="monthly budgets with actual and forecast spend; platform sets them",
            usage=usage_lines(parse.BUDGET_USAGE),
            handler=budget,
            examples=["/forge budget", "/forge budget set payments 5000"],
        )
    )

    alerts = BudgetAlerts(
        service=service,
        catalog=catalog,
        db=ctx.db,
        clock=ctx.clock,
        channel=ctx.slack,
        untagged=untagged_cost,
    )
    ctx.budget_alerts = alerts
    scheduler = ctx.scheduler
    if scheduler is not None:
        scheduler.add(JobSpec("budget-alerts", BUDGET_JOB_EVERY, alerts.scheduled))

        async def purge_cache(slot: datetime) -> None:
            await cache.purge_expired()

        scheduler.add(JobSpec("cost-cache-purge", CACHE_PURGE_EVERY, purge_cache))

    async def environment_cost(name: str) -> str:
        """The actual-cost line for `/env show` and App Home; never fails the caller."""
        try:
            summary = await service.summary(Scope(ScopeKind.ENVIRONMENT, name), Period.THIS_MONTH)
        except CostNotConfigured:
            return ""  # no AWS for this bot: nothing to say about actual cost
        except ForgebotError as exc:
            return views.environment_cost_line(None, str(exc))
        return views.environment_cost_line(summary, None)

    ctx.cost = service
    ctx.budget_alerts = alerts
    ctx.environment_cost = environment_cost
    return service
