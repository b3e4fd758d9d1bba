"""Block Kit for cost and budgets: pure functions from results to (text, blocks)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from commands.cost.parse import ScopeKind
from commands.cost.periods import day_range
from commands.cost.service import BudgetLine, CostSummary, DailyCost
from commands.cost.untagged import UntaggedSpend
from core.block_limits import escape
from core.pricing import money
from core.text import plural
from integrations.aws.cost_types import DateRange
from integrations.aws.resource_types import ENVIRONMENT_TAG
from integrations.slack.blocks import context, divider, header, section

Blocks = list[dict[str, Any]]
SPARK = "▁▂▃▄▅▆▇█"


def percent(ratio: Decimal) -> str:
    return f"{(ratio * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)}%"


def day_text(day: date) -> str:
    return f"{day:%b} {day.day}"


def range_text(start: date, end_exclusive: date) -> str:
    return day_range(DateRange(start=start, end=end_exclusive))


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
    """The change, naming the complete days on both sides (and "per day" when the day counts
    differ, so daily averages are compared)."""
    compared, previous = summary.window.compared, summary.window.previous
    if compared is None:
        return (
            "no complete day this month yet to compare: today's cost so far is an estimate "
            "until the day ends (UTC)"
        )
    before = range_text(previous.start, previous.end)
    now = range_text(compared.start, compared.end)
    change = summary.change
    if change is None:
        return f"no cost on {before} to compare {now} with"
    arrow = ":arrow_up_small:" if change > 0 else ":arrow_down_small:" if change < 0 else "="
    sign = "+" if change > 0 else ""
    if summary.prorated:
        per_day_now = money(summary.compared_total / compared.days, summary.currency)
        per_day_before = money(summary.previous_total / previous.days, summary.currency)
        return (
            f"{arrow} {sign}{percent(change)} per day: {now} ({per_day_now}/day over "
            f"{compared.days} days) vs {before} ({per_day_before}/day over {previous.days} days)"
        )
    return (
        f"{arrow} {sign}{percent(change)}: {now} ({money(summary.compared_total, summary.currency)})"
        f" vs {before} ({money(summary.previous_total, summary.currency)}), complete days"
    )


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


def untagged_text(untagged: UntaggedSpend, now: datetime) -> str:
    """The account's untagged spend this month, its share, last month's share, and where the
    figure comes from (it is refreshed by `/forge budget` and the daily budget check)."""
    this, last = untagged.this_month, untagged.last_month
    share = percent(this.share) if this.share is not None else "no spend"
    before = percent(last.share) if last.share is not None else "no spend"
    trend = " :arrow_up_small: growing" if untagged.grew and last.share is not None else ""
    return (
        f":label: *Untagged* (no `team` tag, in no team's figures): "
        f"{money(this.untagged, untagged.currency)} of {money(this.total, untagged.currency)} "
        f"spent {range_text(this.month.start, this.month.end)} ({share}; "
        f"{range_text(last.month.start, last.month.end)}: {before}){trend}\n"
        f"_account-wide, AWS Cost Explorer {untagged.metric.label}, UTC days, "
        f"{age_text(untagged.fetched_at, now)}_"
    )


def cost_summary(
    summary: CostSummary, now: datetime, untagged: UntaggedSpend | None = None
) -> tuple[str, Blocks]:
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
    if summary.stale:
        blocks.append(section(stale_text(summary, now)))
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
    if untagged is not None and summary.scope.kind is ScopeKind.TEAM:
        blocks.append(section(untagged_text(untagged, now)))
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


def source_text(summary: CostSummary, now: datetime) -> str:
    """Where every figure comes from: the source, the metric, the days' zone and the age."""
    return (
        f":clock3: AWS Cost Explorer data, {age_text(summary.fetched_at, now)} · "
        f"{summary.metric.label} · days are UTC days"
    )


def stale_text(summary: CostSummary, now: datetime) -> str:
    return (
        f":warning: Cost Explorer could not be asked again ({summary.stale}), so these are "
        f"the last known figures, {age_text(summary.fetched_at, now)}."
    )


def _age(summary: CostSummary, now: datetime) -> dict[str, Any]:
    notes = [source_text(summary, now)]
    if summary.estimated:
        notes.append("recent days are estimates until AWS closes the bill")
    notes.append("add `chart` for a chart")
    return context(" · ".join(notes))


def budget_list(
    rows: Sequence[tuple[BudgetLine, CostSummary | None, str | None]],
    currency: str = "USD",
    *,
    untagged: UntaggedSpend | None = None,
    untagged_problem: str | None = None,
    now: datetime | None = None,
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
        month = summary.window.month
        line = (
            f"*{who}*: {money(actual, summary.currency)} of {limit} "
            f"({percent(actual / budget.monthly)} used) "
            f"{range_text(month.start, summary.window.current.end)}"
        )
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
    if untagged is not None and now is not None:
        blocks.append(section(untagged_text(untagged, now)))
    elif untagged_problem:
        blocks.append(section(f":label: Untagged spend: unavailable ({untagged_problem})"))
    blocks.append(divider())
    blocks.append(
        context(
            "Budgets are monthly, over UTC days, from AWS Cost Explorer. Platform can change "
            "one with `/forge budget set TEAM 5000`."
        )
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
        context(
            f"AWS Cost Explorer {summary.metric.label}, "
            f"{range_text(summary.window.month.start, summary.window.current.end)} (UTC days) · "
            f"Details: `/forge cost {_scope_words(budget)}` · budgets: `/forge budget`"
        )
    )
    return headline, blocks


def untagged_alert(untagged: UntaggedSpend, now: datetime) -> tuple[str, Blocks]:
    this, last = untagged.this_month, untagged.last_month
    share = percent(this.share) if this.share is not None else "0%"
    before = percent(last.share) if last.share is not None else "nothing"
    headline = (
        f":label: Untagged spend is growing: {share} of the account's spend "
        f"{range_text(this.month.start, this.month.end)} carries no `team` tag "
        f"({money(this.untagged, untagged.currency)}), against {before} last month"
    )
    blocks: Blocks = [
        section(headline),
        section(untagged_text(untagged, now)),
        context(
            "Untagged cost is in no team's figures or budget. Tag the resources with `team` "
            "(Cost Explorer: Cost allocation tags). Details: `/forge budget`"
        ),
    ]
    return headline, blocks


def _scope_words(budget: BudgetLine) -> str:
    return f"{budget.scope.kind.value} {budget.scope.name}"


def environment_cost_line(summary: CostSummary | None, problem: str | None) -> str:
    if summary is None:
        return f":moneybag: Actual cost: unavailable ({problem})" if problem else ""
    days = range_text(summary.window.month.start, summary.window.current.end)
    return (
        f":moneybag: Actual cost {days}: {money(summary.month_to_date, summary.currency)} "
        f"(AWS Cost Explorer {summary.metric.label}, UTC days, tag {ENVIRONMENT_TAG})"
    )
