"""The platform team's App Home: what they act on, in the order they should act.

The approvals queue (environment requests, TTL extensions beyond a template's max and prod
deploys waiting for a second person, oldest first, with the same Approve and Deny buttons as
their cards), the freezes in force and the catalog windows of the next 14 days, the teams over
or forecast over their monthly budget, and the deploys and operations that failed in the last
day. Other users do not see this section.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from commands.cost.periods import Period
from commands.cost.service import CostService
from commands.deploy.freeze import FreezeService, FreezeState
from commands.deploy.freeze_calendar import UpcomingWindow
from commands.deploy.views import DEPLOY_APPROVE, DEPLOY_DENY, freeze_status
from commands.environments.views import APPROVE, DENY, EXTEND_APPROVE, EXTEND_DENY
from core.auth import Authorizer
from core.block_limits import escape
from core.clock import Clock
from core.errors import ForgebotError
from core.pricing import money
from core.times import shown
from storage import deploy_approvals, deployments, extensions, operations
from storage import environments as env_repo
from storage.db import Database
from storage.extensions import ExtensionRequest
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
    upcoming: Sequence[UpcomingWindow] = ()
    extensions: Sequence[ExtensionRequest] = ()


async def gather(
    clock: Clock, db: Database, freezes: FreezeService, cost: CostService | None
) -> PlatformDesk:
    now = clock.now()
    since = now - RECENT
    requests = await db.run(env_repo.pending)
    deploys = await db.run(deploy_approvals.pending)
    failed_deploys = await db.run(lambda s: deployments.failed_since(s, since))
    failed_operations = await db.run(lambda s: operations.failed_since(s, since))
    frozen = await freezes.status()
    budgets, notes = await _budget_alarms(cost) if cost is not None else ([], [])
    return PlatformDesk(
        requests,
        deploys,
        frozen,
        budgets,
        failed_deploys,
        failed_operations,
        notes,
        freezes.upcoming(),
        await db.run(extensions.pending),
    )


async def _budget_alarms(service: CostService) -> tuple[list[BudgetAlarm], list[str]]:
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
    for extension in desk.extensions:
        queue.append(
            (
                extension.created_at,
                [
                    _section(
                        f":hourglass: keep *{escape(extension.environment)}* "
                        f"({escape(extension.team)}) until {shown(extension.requested_until)} "
                        f"for <@{extension.requester}>, beyond its template's max TTL; "
                        f"asked {_ago(extension.created_at, now)}"
                    ),
                    _buttons(
                        f"home-extend-{extension.id}",
                        EXTEND_APPROVE,
                        EXTEND_DENY,
                        f"{extension.environment_id}|{extension.requested_until.isoformat()}",
                    ),
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
    if desk.freezes or desk.upcoming:
        blocks.extend(freeze_status(list(desk.freezes), desk.upcoming)[1])
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


async def section(
    auth: Authorizer,
    clock: Clock,
    db: Database,
    freezes: FreezeService,
    cost: CostService | None,
    user_id: str,
) -> list[dict[str, Any]]:
    """The platform team's section of the App Home (shown to its members only, first)."""
    if not auth.is_platform(user_id):
        return []
    return desk_blocks(await gather(clock, db, freezes, cost), clock.now())
