"""The one typed container of everything services need, passed explicitly (no globals).

Capabilities receive an `AppContext` when they register; services take the parts they use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.audit import AuditLog
from bot.auth import Authorizer, MembershipCache
from bot.catalog import Catalog
from bot.clock import Clock
from bot.config import Settings
from bot.operations import OperationRunner
from bot.router import Boundary, CommandRouter
from commands.deploy.gates import BudgetGate
from integrations.aws.cost_explorer import CostSource
from integrations.codehost.host import CodeHost
from integrations.kubernetes.gateway import KubeGateway
from integrations.prometheus import PrometheusGateway
from integrations.slack.web import SlackOutbox
from storage.db import Database

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
    previews: PreviewService | None = None
    """Set by the previews capability (pull-request webhooks, their environments)."""
    codehosts: dict[str, CodeHost] = field(default_factory=dict)
    """GitHub/GitLab REST clients by provider, set by the previews capability (closed on stop)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Gateways that later capabilities add (kubernetes, prometheus, aws) live in typed
    fields added with them; `extras` only carries sandbox handles for the demo."""


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
        operations=OperationRunner(db, clock),
        slack_client=slack_client,
        slack=slack,
        router=CommandRouter(boundary),
        boundary=boundary,
        kube=kube,
    )
