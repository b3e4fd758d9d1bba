"""Block Kit for cost and budgets: pure functions from results to (text, blocks)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bot.text import plural
from commands.cost.parse import ScopeKind
from commands.cost.periods import Period
from commands.cost.service import BudgetLine, CostSummary, DailyCost
from commands.environments.pricing import money
from integrations.aws.resource_types import ENVIRONMENT_TAG
from integrations.slack.blockkit import escape
from integrations.slack.blocks import context, divider, header, section

Blocks = list[dict[str, Any]]
SPARK = "▁▂▃▄▅▆▇█"


def percent(ratio: Decimal) -> str:
    return f"{(ratio * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)}%"


def day_text(day: date) -> str:
    return f"{day:%b} {day.day}"


def range_text(start: date, end_exclusive: date) -> str:
    last = end_exclusive - timedelta(days=1)
    if start == last:
        return day_text(start)
    return f"{day_text(start)} – {day_text(last)}"


def age_text(fetched_at: datetime, now: datetime) -> str:
    seconds = max(0, int((now - fetched_at).total_seconds()))
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min old"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min old" if minutes else f"{hours} h old"


def sparkline(days: Sequence[DailyCost]) -> str:
    amounts = [d.amount for d in days]
    if not amounts:
        return ""
    top = max(amounts)
    if top <= 0:
        return SPARK[0] * len(amounts)
    return "".join(SPARK[min(7, int(a / top * 7))] if a > 0 else SPARK[0] for a in amounts)


def change_text(summary: CostSummary) -> str:
    compared = {
        Period.THIS_MONTH: "the same days last month",
        Period.LAST_MONTH: "the month before",
        Period.LAST_30_DAYS: "the 30 days before",
        Period.LAST_7_DAYS: "the 7 days before",
    }[summary.period]
    previous = money(summary.previous_total, summary.currency)
    change = summary.change
    if change is None:
        return f"no cost in {compared} to compare with"
    arrow = ":arrow_up_small:" if change > 0 else ":arrow_down_small:" if change < 0 else "="
    sign = "+" if change > 0 else ""
    return f"{arrow} {sign}{percent(change)} vs {compared} ({previous})"


def forecast_text(summary: CostSummary) -> str:
    forecast = summary.forecast
    month = f"{summary.window.month.start:%B}"
    if forecast is None:
        return f"No forecast for {month}: no cost in the last days to project from."
    figure = money(forecast.amount, summary.currency)
    text = f"Forecast for {month}: *{figure}*"
    if summary.budget is not None:
        used = forecast.amount / summary.budget.monthly
        icon = (
            ":red_circle:"
            if used >= 1
            else ":large_yellow_circle:"
            if used >= Decimal("0.8")
            else ":large_green_circle:"
        )
        verdict = "over" if used > 1 else "within"
        text += (
            f" {icon} {percent(used)} of the {money(summary.budget.monthly, summary.currency)} "
            f"budget ({verdict} budget)"
        )
    else:
        text += " (no budget set)"
    return f"{text}\n_{forecast.explanation}_"


def cost_summary(summary: CostSummary, now: datetime) -> tuple[str, Blocks]:
    who = summary.scope.describe()
    current = summary.window.current
    title = f"Cost of {who}, {summary.period.label}"
    total = money(summary.total, summary.currency)
    text = f"{title}: {total}"
    blocks: Blocks = [header(f":moneybag: {title}")]
    if summary.empty:
        blocks.append(
            section(
                f"No cost recorded for {escape(who)} from {range_text(current.start, current.end)}, "
                "nor in the period before. Check that its resources carry the "
                f"`{_tag_hint(summary)}` tag."
            )
        )
        blocks.append(_age(summary, now))
        return f"{text} (no cost recorded)", blocks
    blocks.append(
        section(f"*{total}* from {range_text(current.start, current.end)}\n{change_text(summary)}")
    )
    if summary.top_services:
        lines = [
            f"{i}. {escape(name)}: {money(amount, summary.currency)}"
            + (f" ({percent(amount / summary.total)})" if summary.total > 0 else "")
            for i, (name, amount) in enumerate(summary.top_services, start=1)
        ]
        rest = summary.services[len(summary.top_services) :]
        if rest:
            other = sum((a for _, a in rest), Decimal(0))
            lines.append(f"   and {len(rest)} more: {money(other, summary.currency)}")
        blocks.append(section("*Top services*\n" + "\n".join(lines)))
    blocks.append(section(forecast_text(summary)))
    if summary.daily:
        peak = max(summary.daily, key=lambda d: d.amount)
        blocks.append(
            section(
                f"*Daily* `{sparkline(summary.daily)}`\n"
                f"peak {money(peak.amount, summary.currency)} on {day_text(peak.day)}, "
                f"average {money(summary.total / len(summary.daily), summary.currency)}/day"
            )
        )
    blocks.append(_age(summary, now))
    return text, blocks


def _tag_hint(summary: CostSummary) -> str:
    return {
        ScopeKind.TEAM: "team",
        ScopeKind.SERVICE: "service",
        ScopeKind.ENVIRONMENT: ENVIRONMENT_TAG,
    }[summary.scope.kind]


def _age(summary: CostSummary, now: datetime) -> dict[str, Any]:
    notes = [f":clock3: AWS Cost Explorer data, {age_text(summary.fetched_at, now)}"]
    if summary.estimated:
        notes.append("recent days are estimates until AWS closes the bill")
    notes.append("add `chart` for a chart")
    return context(" · ".join(notes))


def budget_list(
    rows: Sequence[tuple[BudgetLine, CostSummary | None, str | None]], currency: str = "USD"
) -> tuple[str, Blocks]:
    if not rows:
        return "No budgets yet.", [
            section(
                "No budgets yet. Add `budgets:` to the catalog, or (platform team) "
                "`/forge budget set TEAM 5000`."
            )
        ]
    blocks: Blocks = [header(":bar_chart: Monthly budgets")]
    for budget, summary, problem in rows:
        who = escape(budget.scope.describe())
        limit = money(budget.monthly, currency)
        source = f"set by <@{budget.set_by}>" if budget.source == "slack" else "from the catalog"
        if summary is None:
            blocks.append(section(f"*{who}* budget {limit} ({source})\n:warning: {problem}"))
            continue
        actual = summary.month_to_date
        line = f"*{who}*: {money(actual, summary.currency)} of {limit} ({percent(actual / budget.monthly)} used)"
        if summary.forecast is not None:
            used = summary.forecast.amount / budget.monthly
            icon = (
                ":red_circle:"
                if used >= 1
                else ":large_yellow_circle:"
                if used >= Decimal("0.8")
                else ":large_green_circle:"
            )
            line += f"\n{icon} forecast {money(summary.forecast.amount, summary.currency)} ({percent(used)})"
        blocks.append(section(f"{line}\n_budget {source}_"))
    blocks.append(divider())
    blocks.append(
        context("Budgets are monthly. Platform can change one with `/forge budget set TEAM 5000`.")
    )
    return plural(len(rows), "budget"), blocks


def budget_set(team: str, amount: Decimal, before: Decimal | None, currency: str = "USD") -> str:
    was = f" (was {money(before, currency)})" if before is not None else ""
    return f":white_check_mark: The monthly budget of team {escape(team)} is now {money(amount, currency)}{was}."


def budget_alert(
    budget: BudgetLine,
    summary: CostSummary,
    kind: str,
    threshold: int,
    today: date,
) -> tuple[str, Blocks]:
    who = escape(budget.scope.describe())
    limit = money(budget.monthly, summary.currency)
    actual = summary.month_to_date
    month = f"{summary.window.month.start:%B}"
    if kind == "forecast" and summary.forecast is not None:
        figure = money(summary.forecast.amount, summary.currency)
        headline = (
            f":crystal_ball: {who} is forecast to spend {figure} in {month}, "
            f"{percent(summary.forecast.amount / budget.monthly)} of its {limit} budget"
        )
    else:
        headline = (
            f":rotating_light: {who} has spent {money(actual, summary.currency)} in {month} "
            f"by {day_text(today)}: {threshold}% of its {limit} budget reached "
            f"({percent(actual / budget.monthly)})"
        )
    lines = [headline]
    if summary.forecast is not None and kind != "forecast":
        lines.append(forecast_text(summary))
    drivers = [
        f"{i}. {escape(name)}: {money(amount, summary.currency)}"
        for i, (name, amount) in enumerate(summary.top_services, start=1)
    ]
    blocks: Blocks = [section("\n".join(lines))]
    if drivers:
        blocks.append(section("*Top cost drivers*\n" + "\n".join(drivers)))
    blocks.append(
        context(f"Details: `/forge cost {_scope_words(budget)}` · budgets: `/forge budget`")
    )
    return headline, blocks


def _scope_words(budget: BudgetLine) -> str:
    return f"{budget.scope.kind.value} {budget.scope.name}"


def environment_cost_line(summary: CostSummary | None, problem: str | None) -> str:
    if summary is None:
        return f":moneybag: Actual cost: unavailable ({problem})" if problem else ""
    month = f"{summary.window.month.start:%B}"
    return (
        f":moneybag: Actual cost in {month}: {money(summary.month_to_date, summary.currency)} "
        f"(AWS, tag {ENVIRONMENT_TAG})"
    )
