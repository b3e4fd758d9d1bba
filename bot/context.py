"""The one typed container of everything the capabilities use, passed explicitly (no globals).

`bot.composition.build_context` fills it in one place, in the order of the sections below:
the kernel, the gateways, the capabilities' services, and what the assembly serves (HTTP
routes, App Home sections, start-up hooks). Every capability's `register(app, ctx)` reads
the typed fields it needs; nothing is looked up by a string key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from core.audit import AuditLog
from core.auth import Authorizer
from core.catalog import Catalog
from core.clock import Clock
from core.config import Settings
from core.deploy_gate import BudgetGate, BurnWatch
from core.interactions import SlackEvents
from core.operations import OperationRunner
from core.router import Boundary, CommandHandler, CommandRouter
from core.routes import Route
from core.scheduler import Scheduler
from integrations.aws.cost_explorer import CostSource
from integrations.aws.resources import ResourceControl
from integrations.codehost.host import CodeHost
from integrations.kubernetes.gateway import KubeGateway
from integrations.prometheus import PrometheusGateway
from integrations.slack.web import SlackOutbox
from storage.db import Database

if TYPE_CHECKING:
    from commands.alerts.service import AlertService
    from commands.changes.service import ChangesService
    from commands.cost.alerts import BudgetAlerts
    from commands.cost.cache import CostCache
    from commands.cost.service import CostService
    from commands.cost.untagged import UntaggedCost
    from commands.deploy.canary import CanaryService
    from commands.deploy.freeze import FreezeService
    from commands.deploy.gitops import GitOpsDelivery
    from commands.deploy.history import HistoryService
    from commands.deploy.rollback import RollbackService
    from commands.deploy.runner import RolloutRunner
    from commands.deploy.service import DeployService
    from commands.diagnostics.service import DiagnosticsService
    from commands.dora.service import DoraService
    from commands.environments.service import EnvironmentService
    from commands.incidents.service import IncidentService
    from commands.offhours.service import OffhoursService
    from commands.previews.service import PreviewService
    from commands.scale.service import ScaleService
    from commands.slo.alerts import BurnAlerts
    from commands.slo.service import SloService

HomeSection = Callable[[str], Awaitable[list[dict[str, Any]]]]
"""Given a user id, the blocks a capability shows on that user's Home tab."""
EnvironmentCost = Callable[[str], Awaitable[str]]
"""The actual-cost line of an environment (empty without AWS); never raises."""
StartupHook = Callable[[], Coroutine[Any, Any, None]]


@dataclass
class AppContext:
    # --- 1. the kernel -------------------------------------------------------------------
    settings: Settings
    catalog: Catalog
    clock: Clock
    db: Database
    audit: AuditLog
    auth: Authorizer
    operations: OperationRunner
    router: CommandRouter
    boundary: Boundary
    events: SlackEvents
    """Slack Events API deliveries seen before (Slack retries an event it thinks was lost)."""
    scheduler: Scheduler | None
    """None where no jobs run (a bench, a one-off CLI)."""

    # --- 2. the gateways -----------------------------------------------------------------
    slack_client: AsyncWebClient
    slack: SlackOutbox
    kube: KubeGateway
    cost_source: CostSource | None
    """AWS Cost Explorer (or the sandbox's moto); None: no cost capability."""
    prometheus: PrometheusGateway | None
    """From PROMETHEUS_URL (or a sandbox's); None: SLOs say their data source is missing."""
    aws_resources: ResourceControl | None
    """Tagged EC2/RDS/Auto Scaling resources that sleep off-hours, when AWS is configured."""
    codehosts: dict[str, CodeHost]
    """GitHub/GitLab REST clients by provider, for which a token is configured."""

    # --- 3. the capabilities' services, built by bot.composition in this order -----------
    gitops: GitOpsDelivery = field(init=False)
    freezes: FreezeService = field(init=False)
    revisions: HistoryService = field(init=False)
    rollouts: RolloutRunner = field(init=False)
    rollbacks: RollbackService = field(init=False)
    canaries: CanaryService = field(init=False)
    """Argo Rollouts canaries: the buttons of a deploy's progress message, the budget pause."""
    slos: SloService = field(init=False)
    budget_gate: BudgetGate | None = field(init=False)
    """What the deploy gate asks about error budgets (the SLO capability's); tests swap it."""
    burn_watch: BurnWatch | None = field(init=False)
    """What a running canary asks about fast burns (the SLO capability's): it pauses on one."""
    slo_alerts: BurnAlerts = field(init=False)
    deploys: DeployService = field(init=False)
    scales: ScaleService = field(init=False)
    environments: EnvironmentService = field(init=False)
    offhours: OffhoursService = field(init=False)
    previews: PreviewService = field(init=False)
    cost: CostService | None = field(init=False)
    """None without a cost source."""
    cost_cache: CostCache | None = field(init=False)
    untagged_cost: UntaggedCost | None = field(init=False)
    budget_alerts: BudgetAlerts | None = field(init=False)
    environment_cost: EnvironmentCost = field(init=False)
    dora: DoraService = field(init=False)
    changes: ChangesService = field(init=False)
    diagnostics: DiagnosticsService = field(init=False)
    incidents: IncidentService = field(init=False)
    alerts: AlertService = field(init=False)

    # --- 4. what the assembly serves -----------------------------------------------------
    routes: list[Route] = field(default_factory=list)
    """HTTP routes under /api/ (deployments, Alertmanager and code-host webhooks)."""
    home_sections: list[HomeSection] = field(default_factory=list)
    """The App Home's sections, top to bottom."""
    startup_hooks: list[StartupHook] = field(default_factory=list)
    """Work for a replica that becomes the scheduler leader (off-hours reconciles at once)."""
    env_verbs: dict[str, CommandHandler] = field(default_factory=dict)
    """`/env` verbs another capability answers (off-hours' `wake`)."""

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
