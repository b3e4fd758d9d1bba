"""The one typed container of everything services need, passed explicitly (no globals).

Capabilities receive an `AppContext` when they register; services take the parts they use.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from core.audit import AuditLog
from core.auth import Authorizer, MembershipCache
from core.block_limits import escape
from core.catalog import Catalog
from core.clock import Clock
from core.config import Settings
from core.deploy_gate import BudgetGate
from core.operations import OperationRunner, process_owner
from core.router import Boundary, CommandRouter
from integrations.aws.cost_explorer import CostSource
from integrations.codehost.host import CodeHost
from integrations.kubernetes.gateway import KubeGateway
from integrations.prometheus import PrometheusGateway
from integrations.slack.web import SlackOutbox
from storage.db import Database
from storage.models import Operation

if TYPE_CHECKING:
    from commands.deploy.gitops import GitOpsDelivery

if TYPE_CHECKING:
    from commands.previews.service import PreviewService


@dataclass
class AppContext:
    settings: Settings
    catalog: Catalog
    clock: Clock
    db: Database
    audit: AuditLog
    auth: Authorizer
    operations: OperationRunner
    slack_client: AsyncWebClient
    slack: SlackOutbox
    router: CommandRouter
    boundary: Boundary
    kube: KubeGateway
    budget_gate: BudgetGate | None = None
    cost_source: CostSource | None = None
    """AWS Cost Explorer (or the sandbox's): set by the runtime before capabilities register."""
    """Set by the SLO capability; the deploy gate asks it about error budgets."""
    prometheus: PrometheusGateway | None = None
    """Set by the SLO capability from PROMETHEUS_URL (or beforehand, by a sandbox)."""
    gitops: GitOpsDelivery | None = None
    """Set by the deploy capability: commits to desired-state repositories (`delivery: gitops`)."""
    previews: PreviewService | None = None
    """Set by the previews capability (pull-request webhooks, their environments)."""
    codehosts: dict[str, CodeHost] = field(default_factory=dict)
    """GitHub/GitLab REST clients by provider, set by the previews capability (closed on stop)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Gateways that later capabilities add (kubernetes, prometheus, aws) live in typed
    fields added with them; `extras` only carries sandbox handles for the demo."""

    async def settle(self) -> None:
        """Wait for everything the requests so far started: handlers still working after their
        ack, the operations they submitted and the Slack messages they queued, until none is
        left (work started by work is awaited too). It awaits the work itself, never quiet."""
        while True:
            await self.boundary.wait_idle()
            await self.operations.wait_idle()
            await self.slack.flush()
            if not (self.boundary.busy or self.operations.busy or self.slack.busy):
                return


def build_context(
    settings: Settings,
    catalog: Catalog,
    clock: Clock,
    db: Database,
    slack_client: AsyncWebClient,
    slack: SlackOutbox,
    kube: KubeGateway,
) -> AppContext:
    audit = AuditLog(db, clock)
    boundary = Boundary(audit)
    operations = OperationRunner(
        db,
        clock,
        owner=process_owner(settings.replica),
        lease_seconds=settings.operation_lease_seconds,
        recovery_seconds=settings.recovery_seconds,
    )
    operations.announce = functools.partial(_announce_failure, slack)

    async def usergroup_members(group: str) -> list[str]:
        response = await slack_client.usergroups_users_list(usergroup=group)
        users: list[object] = list(response.get("users", []))
        return [str(u) for u in users]

    return AppContext(
        settings=settings,
        catalog=catalog,
        clock=clock,
        db=db,
        audit=audit,
        auth=Authorizer(catalog, MembershipCache(fetch=usergroup_members)),
        operations=operations,
        slack_client=slack_client,
        slack=slack,
        router=CommandRouter(boundary),
        boundary=boundary,
        kube=kube,
    )


async def _announce_failure(slack: SlackOutbox, operation: Operation, reason: str) -> None:
    """The operation runner's last word when a handler could not report a failure itself."""
    what = operation.kind.replace(".", " ")
    text = f":x: Your {what} (reference `{operation.id[:8]}`) did not finish: {escape(reason)}"
    if operation.actor_user_id.startswith(("U", "W")):
        await slack.dm(operation.actor_user_id, text)
    elif operation.channel_id:
        await slack.post(operation.channel_id, text)
