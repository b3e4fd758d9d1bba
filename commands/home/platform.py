"""The platform team's App Home: what they act on, in the order they should act.

The approvals queue (environment requests and prod deploys waiting for a second person, oldest
first, with the same Approve and Deny buttons as their cards), the freezes in force, the teams
over or forecast over their monthly budget, and the deploys and operations that failed in the
last day. Other users do not see this section.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.context import AppContext
from commands.cost.periods import Period
from commands.deploy.freeze import FreezeState
from commands.deploy.views import DEPLOY_APPROVE, DEPLOY_DENY
from commands.environments.views import APPROVE, DENY
from core.block_limits import escape
from core.errors import ForgebotError
from core.pricing import money
from storage import deploy_approvals, deployments, operations
from storage import environments as env_repo
from storage.models import DeployApproval, DeploymentRecord, EnvironmentRecord, Operation

log = logging.getLogger(__name__)

RECENT = timedelta(days=1)
QUEUE_SHOWN = 10


@dataclass(frozen=True)
class BudgetAlarm:
    team: str
    monthly: Decimal
    spent: Decimal
    forecast: Decimal | None
    currency: str


@dataclass(frozen=True)
class PlatformDesk:
    requests: Sequence[EnvironmentRecord] = ()
    deploys: Sequence[DeployApproval] = ()
    freezes: Sequence[FreezeState] = ()
    budgets: Sequence[BudgetAlarm] = ()
    failed_deploys: Sequence[DeploymentRecord] = ()
    failed_operations: Sequence[Operation] = ()
    notes: list[str] = field(default_factory=list)


async def gather(ctx: AppContext) -> PlatformDesk:
    now = ctx.clock.now()
    since = now - RECENT
    requests = await ctx.db.run(env_repo.pending)
    deploys = await ctx.db.run(deploy_approvals.pending)
    failed_deploys = await ctx.db.run(lambda s: deployments.failed_since(s, since))
    failed_operations = await ctx.db.run(lambda s: operations.failed_since(s, since))
    freezes_service = ctx.freezes
    freezes = await freezes_service.status() if freezes_service is not None else []
    budgets, notes = await _budget_alarms(ctx)
    return PlatformDesk(
        requests, deploys, freezes, budgets, failed_deploys, failed_operations, notes
    )


async def _budget_alarms(ctx: AppContext) -> tuple[list[BudgetAlarm], list[str]]:
    service = ctx.cost
    if service is None:
        return [], []
    alarms: list[BudgetAlarm] = []
    for line in await service.budgets():
        try:
            summary = await service.summary(line.scope, Period.THIS_MONTH)
        except ForgebotError as exc:
            return alarms, [f"Budgets not checked: {exc}"]
        forecast = summary.forecast.amount if summary.forecast is not None else None
        if summary.month_to_date >= line.monthly or (forecast and forecast >= line.monthly):
            alarms.append(
                BudgetAlarm(
                    line.team, line.monthly, summary.month_to_date, forecast, summary.currency
                )
            )
    return alarms, []


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2990]}}


def _buttons(block_id: str, approve: str, deny: str, value: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "block_id": block_id,
        "elements": [
            {
                "type": "button",
                "action_id": approve,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": value,
            },
            {
                "type": "button",
                "action_id": deny,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Deny"},
                "value": value,
            },
        ],
    }


def _ago(then: datetime, now: datetime) -> str:
    from core.durations import format_for_people

    return f"{format_for_people(now - then)} ago"


def desk_blocks(desk: PlatformDesk, now: datetime) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Platform team"}}
    ]
    # Oldest first across both kinds: whoever has waited longest is answered first.
    queue: list[tuple[datetime, list[dict[str, Any]]]] = []
    for record in desk.requests:
        queue.append(
            (
                record.requested_at,
                [
                    _section(
                        f":inbox_tray: *{escape(record.name)}*: {escape(record.template)} "
                        f"{escape(record.size)} for <@{record.owner_user_id}> ({escape(record.team)}), "
                        f"asked {_ago(record.requested_at, now)}"
                    ),
                    _buttons(f"home-env-{record.id}", APPROVE, DENY, str(record.id)),
                ],
            )
        )
    for approval in desk.deploys:
        queue.append(
            (
                approval.created_at,
                [
                    _section(
                        f":rocket: deploy *{escape(approval.service)}* `{escape(approval.version)}` "
                        f"to *{escape(approval.environment)}* for <@{approval.requester}>, "
                        f"asked {_ago(approval.created_at, now)}"
                    ),
                    _buttons(
                        f"home-deploy-{approval.id}", DEPLOY_APPROVE, DEPLOY_DENY, str(approval.id)
                    ),
                ],
            )
        )
    queue.sort(key=lambda item: item[0])
    waiting = len(queue)
    blocks.append(
        _section(
            f"*Waiting for approval*: {waiting}" if waiting else "*Waiting for approval*: none"
        )
    )
    for _, item in queue[:QUEUE_SHOWN]:
        blocks.extend(item)
    if waiting > QUEUE_SHOWN:
        blocks.append(_section(f"…and {waiting - QUEUE_SHOWN} more, oldest shown first"))
    if desk.freezes:
        lines = [
            f":snowflake: *{escape(f.environment)}* "
            + (f"until {f.until:%a %d %b %H:%M} UTC" if f.until else "until someone unfreezes it")
            + f": {escape(f.reason)}"
            for f in desk.freezes
        ]
        blocks.append(_section("*Frozen now*\n" + "\n".join(lines)))
    if desk.budgets:
        lines = []
        for alarm in desk.budgets:
            spent = money(alarm.spent, alarm.currency)
            limit = money(alarm.monthly, alarm.currency)
            if alarm.spent >= alarm.monthly:
                lines.append(f":red_circle: *{escape(alarm.team)}* has spent {spent} of {limit}")
            else:
                assert alarm.forecast is not None
                lines.append(
                    f":crystal_ball: *{escape(alarm.team)}* is forecast to spend "
                    f"{money(alarm.forecast, alarm.currency)} of {limit}"
                )
        blocks.append(_section("*Budgets*\n" + "\n".join(lines)))
    failures = [
        f":x: {escape(r.kind)} *{escape(r.service)}* `{escape(r.version)}` to "
        f"*{escape(r.environment)}*: {escape(r.failure_reason or 'failed')}"
        + (f" ({_ago(r.finished_at, now)})" if r.finished_at else "")
        for r in desk.failed_deploys
    ]
    failures += [
        f":x: operation {escape(o.kind)} `{o.id[:8]}`: {escape(o.error or 'failed')} "
        f"({_ago(o.updated_at, now)})"
        for o in desk.failed_operations
    ]
    if failures:
        blocks.append(_section("*Failed in the last day*\n" + "\n".join(failures)))
    for note in desk.notes:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return blocks


def register(ctx: AppContext) -> None:
    """Add the platform team's section to the App Home (shown to its members only)."""

    async def home(user_id: str) -> list[dict[str, Any]]:
        if not ctx.auth.is_platform(user_id):
            return []
        return desk_blocks(await gather(ctx), ctx.clock.now())

    # First: the platform team's work comes before their own environments.
    ctx.home_sections.insert(0, home)
