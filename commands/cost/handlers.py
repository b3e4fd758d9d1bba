"""Slack listeners for `/forge cost` (alias `/cost`) and `/forge budget`, and the actual-cost
line other capabilities show for environments (the budget job: `bot.composition`)."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError

from bot.context import AppContext
from commands.cost import chart, parse, views
from commands.cost.parse import Scope, ScopeKind
from commands.cost.periods import Period
from commands.cost.service import BudgetLine, CostNotConfigured, CostService, CostSummary
from commands.cost.untagged import UntaggedCost, UntaggedSpend
from core.auth import Action, Authorizer
from core.clock import Clock
from core.errors import ForgebotError, NotAuthorized
from core.router import Ack, Invocation, Subcommand, ephemeral, usage_lines
from integrations.slack.web import SlackOutbox

log = logging.getLogger(__name__)

CHART_BUDGET_PERIODS = (Period.THIS_MONTH, Period.LAST_MONTH, Period.LAST_30_DAYS)


async def _last_untagged(untagged_cost: UntaggedCost, scope: Scope) -> UntaggedSpend | None:
    if scope.kind is not ScopeKind.TEAM:
        return None
    try:
        return await untagged_cost.last_known()
    except Exception:  # a line of context; the cost itself is already answered
        log.warning("could not read the last untagged spend", exc_info=True)
        return None


async def cost(
    service: CostService,
    untagged_cost: UntaggedCost,
    auth: Authorizer,
    clock: Clock,
    slack: SlackOutbox,
    invocation: Invocation,
    ack: Ack,
    respond: AsyncRespond,
) -> None:
    command = parse.parse_cost(invocation.args, service.catalog)
    scope = command.scope or service.default_scope(
        [t.name for t in auth.teams_of(invocation.actor.user_id)]
    )
    summary = service.summary_from_memory(scope, command.period)
    if summary is not None:
        # Everything is in memory (a few milliseconds, no I/O): the ack is the answer,
        # with the untagged spend if this process holds it.
        untagged = untagged_cost.in_memory() if scope.kind is ScopeKind.TEAM else None
        text, blocks = views.cost_summary(summary, clock.now(), untagged)
        await ack(**ephemeral(text, blocks))
    else:
        await ack()
        summary = await service.summary(scope, command.period)
        untagged = await _last_untagged(untagged_cost, scope)
        text, blocks = views.cost_summary(summary, clock.now(), untagged)
        await respond(**ephemeral(text, blocks))
    if command.chart:
        await _upload_chart(slack, invocation.channel_id, summary)


async def _upload_chart(slack: SlackOutbox, channel: str, summary: CostSummary) -> None:
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
        await slack.upload_file(
            channel,
            f"cost-{summary.scope.kind.value}-{summary.scope.name}-{current.start}.png",
            png,
            f"Daily cost of {title}",
        )
    except SlackApiError as exc:
        error = str(exc.response.get("error") or "error")
        hint = " Invite me with `/invite @forgebot`." if error == "not_in_channel" else ""
        raise ForgebotError(f"I could not post the chart here ({error}).{hint}") from None


async def budget(
    service: CostService,
    untagged_cost: UntaggedCost,
    auth: Authorizer,
    clock: Clock,
    invocation: Invocation,
    ack: Ack,
    respond: AsyncRespond,
) -> None:
    command = parse.parse_budget(invocation.args, service.catalog)
    if command.verb == "set":
        decision = auth.authorize(invocation.actor, Action.BUDGET_SET)
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.BUDGET_SET))
        await ack()
        before = await service.set_budget(command.team, command.amount, invocation.actor.user_id)
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
        rows, untagged=untagged, untagged_problem=problem, now=clock.now()
    )
    await respond(**ephemeral(text, blocks))


async def environment_cost_line(service: CostService, name: str) -> str:
    """The actual-cost line for `/env show` and App Home; never fails the caller."""
    try:
        summary = await service.summary(Scope(ScopeKind.ENVIRONMENT, name), Period.THIS_MONTH)
    except CostNotConfigured:
        return ""  # no AWS for this bot: nothing to say about actual cost
    except ForgebotError as exc:
        return views.environment_cost_line(None, str(exc))
    return views.environment_cost_line(summary, None)


def register(app: AsyncApp, ctx: AppContext) -> None:
    service, untagged = ctx.cost, ctx.untagged_cost
    if service is None or untagged is None:
        return  # no cost source: no cost commands
    ctx.router.add(
        Subcommand(
            name="cost",
            summary="cloud cost by team, service or environment, with forecast and budget",
            usage=usage_lines(parse.COST_USAGE),
            handler=partial(cost, service, untagged, ctx.auth, ctx.clock, ctx.slack),
            examples=["/cost", "/cost team payments last-month", "/cost service checkout 7d chart"],
        ),
        Subcommand(
            name="budget",
            summary="monthly budgets with actual and forecast spend; platform sets them",
            usage=usage_lines(parse.BUDGET_USAGE),
            handler=partial(budget, service, untagged, ctx.auth, ctx.clock),
            examples=["/forge budget", "/forge budget set payments 5000"],
        ),
    )
