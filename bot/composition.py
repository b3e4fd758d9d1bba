"""The composition root: every service and gateway of a process is built here, once, in the
order below, into the typed fields of `AppContext`. Capabilities never build each other's
services; their `register(app, ctx)` only reads what this module put in the context.

Order (each step uses only what the steps before it built):

1. the kernel: audit log, error boundary, operation runner, authorizer, command router;
2. the gateways: Slack, Kubernetes, Cost Explorer (given), Prometheus, AWS resources,
   Alertmanager, GitHub/GitLab (from the settings, `bot.gateways`);
3. the services: deploy's (GitOps, freezes, history, rollout runner, rollbacks), SLOs and the
   deploy gate they provide, deploys, environments, off-hours, previews, cost, DORA, changes,
   diagnostics, incidents, alerts;
4. what the assembly serves: scheduled jobs, HTTP routes, App Home sections, start-up hooks.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from bot import gateways
from bot.context import AppContext
from commands.alerts.handlers import webhook_route
from commands.alerts.service import AlertService
from commands.changes.service import ChangesService
from commands.cost import handlers as cost_handlers
from commands.cost.alerts import BudgetAlerts
from commands.cost.cache import CostCache
from commands.cost.previews import PreviewCosts
from commands.cost.service import CostService
from commands.cost.untagged import UntaggedCost
from commands.deploy.api import deployments_route
from commands.deploy.canary import CanaryFollower, CanaryService, rollouts_api
from commands.deploy.freeze import FreezeService
from commands.deploy.gitops import GitOpsDelivery
from commands.deploy.history import HistoryService
from commands.deploy.notifications import SlackApprovalNotifier, SlackRolloutNotifier
from commands.deploy.rollback import RollbackService
from commands.deploy.runner import RolloutRunner
from commands.deploy.service import DeployService
from commands.diagnostics.service import DiagnosticsService
from commands.dora.service import DoraService
from commands.environments import handlers as environment_handlers
from commands.environments.notifications import SlackEnvironmentNotifier
from commands.environments.service import PROVISION_STEPS, EnvironmentService
from commands.home import platform
from commands.incidents.service import IncidentService, PagingUrls
from commands.offhours import handlers as offhours_handlers
from commands.offhours.notifications import SlackOffhoursNotifier
from commands.offhours.service import OffhoursService
from commands.previews import handlers as preview_handlers
from commands.previews.notifications import (
    PreviewAnnouncer,
    PreviewAwareNotifier,
    PreviewRolloutNotifier,
)
from commands.previews.service import PreviewService
from commands.previews.webhooks import github_route, gitlab_route
from commands.scale.service import ScaleService
from commands.slo import handlers as slo_handlers
from commands.slo.alerts import BurnAlerts
from commands.slo.gate import SloBudgetGate
from commands.slo.notifications import SlackAlertNotifier
from commands.slo.service import SloService
from core.audit import AuditLog
from core.auth import Authorizer, MembershipCache
from core.block_limits import escape
from core.catalog import Catalog
from core.clock import Clock
from core.config import Settings
from core.deploy_gate import BudgetGate, BurnWatch
from core.interactions import SlackEvents
from core.operations import OperationRunner, process_owner
from core.router import Boundary, CommandRouter
from core.scheduler import JobSpec, Scheduler
from integrations.aws.cost_explorer import CostSource
from integrations.kubernetes.argocd_autosync import ArgoAutoSync
from integrations.kubernetes.flux_suspend import FluxSuspend, GitOpsPauses
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.rollout import RolloutStatus
from integrations.kubernetes.scaling import ScalingGateway
from integrations.prometheus import PrometheusGateway
from integrations.slack.web import SlackOutbox
from storage.db import Database
from storage.models import Operation

RECONCILE_JOB = "offhours"
WEEKLY_JOB = "offhours-weekly"
BUDGET_JOB_EVERY = timedelta(minutes=15)
"""How often the budget job looks at the clock; it acts once a day, at the alert time."""
CACHE_PURGE_EVERY = timedelta(hours=6)


def build_context(
    settings: Settings,
    catalog: Catalog,
    clock: Clock,
    db: Database,
    slack_client: AsyncWebClient,
    slack: SlackOutbox,
    kube: KubeGateway,
    *,
    scheduler: Scheduler | None = None,
    cost_source: CostSource | None = None,
    prometheus: PrometheusGateway | None = None,
) -> AppContext:
    ctx = _kernel_and_gateways(
        settings, catalog, clock, db, slack_client, slack, kube, scheduler, cost_source, prometheus
    )
    _deploy_services(ctx)
    _slo_services(ctx)
    _deploys(ctx)
    _environment_services(ctx)
    _cost_services(ctx)
    _insight_services(ctx)
    _jobs(ctx)
    _served(ctx)
    return ctx


# --- 1 and 2: the kernel and the gateways ---------------------------------------------------


def _kernel_and_gateways(
    settings: Settings,
    catalog: Catalog,
    clock: Clock,
    db: Database,
    slack_client: AsyncWebClient,
    slack: SlackOutbox,
    kube: KubeGateway,
    scheduler: Scheduler | None,
    cost_source: CostSource | None,
    prometheus: PrometheusGateway | None,
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
    members = functools.partial(_usergroup_members, slack_client)
    return AppContext(
        settings=settings,
        catalog=catalog,
        clock=clock,
        db=db,
        audit=audit,
        auth=Authorizer(catalog, MembershipCache(fetch=members)),
        operations=operations,
        router=CommandRouter(boundary),
        boundary=boundary,
        events=SlackEvents(db, clock),
        scheduler=scheduler,
        slack_client=slack_client,
        slack=slack,
        kube=kube,
        cost_source=cost_source,
        prometheus=prometheus if prometheus is not None else gateways.prometheus_from(settings),
        aws_resources=gateways.aws_resources_from(settings),
        codehosts=gateways.code_hosts(settings),
    )


async def _usergroup_members(client: AsyncWebClient, group: str) -> list[str]:
    response = await client.usergroups_users_list(usergroup=group)
    users: list[object] = list(response.get("users", []))
    return [str(u) for u in users]


async def _announce_failure(slack: SlackOutbox, operation: Operation, reason: str) -> None:
    """The operation runner's last word when a handler could not report a failure itself."""
    what = operation.kind.replace(".", " ")
    text = f":x: Your {what} (reference `{operation.id[:8]}`) did not finish: {escape(reason)}"
    if operation.actor_user_id.startswith(("U", "W")):
        await slack.dm(operation.actor_user_id, text)
    elif operation.channel_id:
        await slack.post(operation.channel_id, text)


# --- 3: the services -----------------------------------------------------------------------


def _deploy_services(ctx: AppContext) -> None:
    """What deploys, rollbacks, freezes and history share (other capabilities use them too)."""
    ctx.gitops = GitOpsDelivery(ctx.catalog, ctx.db, ctx.clock, ctx.kube)
    ctx.freezes = FreezeService(ctx.catalog, ctx.db, ctx.clock, ctx.auth)
    ctx.revisions = HistoryService(ctx.catalog, ctx.db, ctx.kube, ctx.gitops)
    # A deploy's progress message is drawn by the canary follower, which adds the canary's
    # steps and buttons for Argo Rollouts workloads and passes everything else through.
    follow = CanaryFollower(ctx.slack, SlackRolloutNotifier(ctx.slack))
    ctx.rollouts = RolloutRunner(ctx.catalog, ctx.db, ctx.clock, ctx.operations, ctx.kube, follow)
    ctx.rollbacks = RollbackService(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.auth,
        ctx.operations,
        ctx.kube,
        ctx.rollouts,
        ctx.gitops,
    )
    ctx.rollbacks.register_operations()
    ctx.canaries = CanaryService(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.auth,
        ctx.operations,
        rollouts_api(ctx.kube),
        ctx.rollouts,
        burn_watch=functools.partial(_current_burn_watch, ctx),
    )
    ctx.canaries.register_operations()
    follow.canaries = ctx.canaries


def _slo_services(ctx: AppContext) -> None:
    ctx.slos = SloService(ctx.catalog, ctx.clock, ctx.auth, ctx.prometheus)
    ctx.budget_gate = ctx.burn_watch = SloBudgetGate(ctx.slos)
    ctx.slo_alerts = BurnAlerts(
        ctx.catalog, ctx.db, ctx.clock, ctx.slos, SlackAlertNotifier(ctx.slack)
    )


def _current_budget_gate(ctx: AppContext) -> BudgetGate | None:
    return ctx.budget_gate


def _current_burn_watch(ctx: AppContext) -> BurnWatch | None:
    return ctx.burn_watch


def _deploys(ctx: AppContext) -> None:
    ctx.deploys = DeployService(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.auth,
        ctx.audit,
        ctx.operations,
        ctx.kube,
        ctx.freezes,
        ctx.rollouts,
        SlackApprovalNotifier(ctx.slack),
        # Asked at each deploy: the gate is a seam (tests put a stub in `ctx.budget_gate`).
        budget_gate=functools.partial(_current_budget_gate, ctx),
        gitops=ctx.gitops,
    )
    ctx.deploys.register_operations()
    ctx.scales = ScaleService(
        ctx.catalog, ctx.clock, ctx.auth, ctx.operations, ctx.kube, ctx.freezes, ctx.slack
    )
    ctx.scales.register_operations()


def _environment_services(ctx: AppContext) -> None:
    ctx.environments = EnvironmentService(
        catalog=ctx.catalog,
        db=ctx.db,
        clock=ctx.clock,
        auth=ctx.auth,
        operations=ctx.operations,
        kube=ctx.kube,
        notify=SlackEnvironmentNotifier(ctx.slack, ctx.clock, PROVISION_STEPS),
        audit=ctx.audit,
    )
    ctx.environments.register_operations()
    ctx.offhours = OffhoursService(
        catalog=ctx.catalog,
        db=ctx.db,
        clock=ctx.clock,
        auth=ctx.auth,
        audit=ctx.audit,
        scaling=ScalingGateway(ctx.kube),
        notify=SlackOffhoursNotifier(ctx.slack, ctx.catalog),
        aws=ctx.aws_resources,
        autosync=GitOpsPauses([ArgoAutoSync(ctx.kube), FluxSuspend(ctx.kube)]),
    )
    ctx.previews = PreviewService(
        catalog=ctx.catalog,
        db=ctx.db,
        clock=ctx.clock,
        auth=ctx.auth,
        audit=ctx.audit,
        operations=ctx.operations,
        environments=ctx.environments,
        kube=ctx.kube,
        rollouts=RolloutRunner(
            ctx.catalog,
            ctx.db,
            ctx.clock,
            ctx.operations,
            ctx.kube,
            PreviewRolloutNotifier(functools.partial(_preview_progress, ctx)),
        ),
        announcer=PreviewAnnouncer(ctx.slack, ctx.db, ctx.clock),
        hosts=ctx.codehosts,
        offhours=ctx.offhours,
    )
    ctx.previews.register_operations()
    # A preview's environment has no owner to DM; its pull request hears about it instead.
    ctx.environments.notify = PreviewAwareNotifier(
        ctx.environments.notify, ctx.previews.environment_deleted
    )


async def _preview_progress(ctx: AppContext, namespace: str, status: RolloutStatus | None) -> None:
    """The previews' rollout runner reports to the preview service (built after it)."""
    await ctx.previews.progress(namespace, status)


def _cost_services(ctx: AppContext) -> None:
    ctx.cost = ctx.cost_cache = ctx.untagged_cost = ctx.budget_alerts = None
    ctx.environment_cost = _no_cost_line
    if ctx.cost_source is None:
        return
    ctx.cost_cache = CostCache(ctx.db, ctx.clock, ctx.settings.cost_cache_ttl)
    ctx.cost = CostService(
        catalog=ctx.catalog,
        db=ctx.db,
        clock=ctx.clock,
        source=ctx.cost_source,
        cache=ctx.cost_cache,
        forecast_mode=ctx.settings.cost_forecast,
        previews=PreviewCosts(ctx.catalog, ctx.db, ctx.clock),
    )
    ctx.untagged_cost = UntaggedCost(
        catalog=ctx.catalog, source=ctx.cost_source, cache=ctx.cost_cache
    )
    ctx.budget_alerts = BudgetAlerts(
        service=ctx.cost,
        catalog=ctx.catalog,
        db=ctx.db,
        clock=ctx.clock,
        channel=ctx.slack,
        untagged=ctx.untagged_cost,
    )
    ctx.environment_cost = functools.partial(cost_handlers.environment_cost_line, ctx.cost)


async def _no_cost_line(name: str) -> str:
    return ""  # no AWS for this bot: nothing to say about actual cost


def _insight_services(ctx: AppContext) -> None:
    ctx.dora = DoraService(ctx.catalog, ctx.db, ctx.clock, ctx.auth)
    ctx.changes = ChangesService(ctx.catalog, ctx.db, ctx.clock, ctx.auth, ctx.kube)
    ctx.diagnostics = DiagnosticsService(
        ctx.catalog, ctx.db, ctx.clock, ctx.auth, ctx.kube, ctx.slos, ctx.freezes, ctx.cost
    )
    settings = ctx.settings
    ctx.incidents = IncidentService(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.auth,
        ctx.operations,
        ctx.slack,
        ctx.slack_client,
        ctx.changes,
        PagingUrls(settings.pagerduty_events_url, settings.opsgenie_api_url),
        timeline_reaction=settings.incident_timeline_reaction,
    )
    ctx.incidents.register_operations()
    ctx.alerts = AlertService(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.auth,
        ctx.operations,
        ctx.slack,
        ctx.changes,
        ctx.slos,
        list(settings.alert_route_labels),
        gateways.alertmanager_from(settings),
    )
    ctx.alerts.register_operations()


# --- 4: what the assembly serves -------------------------------------------------------------


def _jobs(ctx: AppContext) -> None:
    scheduler = ctx.scheduler
    if scheduler is None:
        return
    schedules = ctx.catalog.schedules
    scheduler.add(JobSpec("env-ttl", schedules.ttl_sweep_interval, ctx.environments.sweep_expiry))
    scheduler.add(JobSpec(RECONCILE_JOB, schedules.offhours_interval, ctx.offhours.reconcile_job))
    scheduler.add(JobSpec(WEEKLY_JOB, timedelta(days=7), ctx.offhours.weekly_summary))
    # Level-triggered: after any downtime, put everything where the schedule says now.
    ctx.startup_hooks.append(functools.partial(_run_now, scheduler, RECONCILE_JOB))
    if ctx.catalog.previews:
        scheduler.add(
            JobSpec("preview-resync", schedules.ttl_sweep_interval, ctx.previews.resync_job)
        )
    scheduler.add(
        JobSpec(
            "slo-burn-alerts",
            schedules.slo_alert_interval,
            functools.partial(_slo_alert_job, ctx.slo_alerts),
        )
    )
    if ctx.budget_alerts is not None and ctx.cost_cache is not None:
        scheduler.add(JobSpec("budget-alerts", BUDGET_JOB_EVERY, ctx.budget_alerts.scheduled))
        scheduler.add(
            JobSpec(
                "cost-cache-purge",
                CACHE_PURGE_EVERY,
                functools.partial(_purge_cost_cache, ctx.cost_cache),
            )
        )


async def _run_now(scheduler: Scheduler, job_id: str) -> None:
    await scheduler.run_now(job_id)


async def _slo_alert_job(alerts: BurnAlerts, slot: datetime) -> None:
    await alerts.run()


async def _purge_cost_cache(cache: CostCache, slot: datetime) -> None:
    await cache.purge_expired()


def _served(ctx: AppContext) -> None:
    settings = ctx.settings
    ctx.routes.extend(
        [
            (
                "POST",
                "deployments",
                deployments_route(ctx.catalog, ctx.db, ctx.clock, _plain(settings.api_token)),
            ),
            (
                "POST",
                "alertmanager",
                webhook_route(ctx.alerts, _plain(settings.alertmanager_token)),
            ),
            (
                "POST",
                "webhooks/github",
                github_route(ctx.previews.receive, _plain(settings.github_webhook_secret)),
            ),
            (
                "POST",
                "webhooks/gitlab",
                gitlab_route(ctx.previews.receive, _plain(settings.gitlab_webhook_token)),
            ),
        ]
    )
    # Top to bottom: the platform team's work, then the user's environments and their
    # off-hours, the team's previews and SLOs.
    ctx.home_sections.extend(
        [
            functools.partial(platform.section, ctx.auth, ctx.clock, ctx.db, ctx.freezes, ctx.cost),
            functools.partial(
                environment_handlers.home_section,
                ctx.environments,
                ctx.clock,
                ctx.environment_cost,
            ),
            functools.partial(offhours_handlers.home_section, ctx.offhours),
            functools.partial(preview_handlers.home_section, ctx.auth, ctx.previews),
            functools.partial(
                slo_handlers.home_section, ctx.auth, ctx.catalog, ctx.clock, ctx.slos
            ),
        ]
    )


def _plain(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
