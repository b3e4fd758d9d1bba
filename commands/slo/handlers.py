"""`/forge slo` (alias `/slo`), the alert buttons, the deploy gate and the alert job."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.deploy import parse as deploy_parse
from commands.deploy import views as deploy_views
from commands.slo import views
from commands.slo.alerts import BurnAlerts
from commands.slo.budget import worst_first
from commands.slo.gate import SloBudgetGate
from commands.slo.notifications import SlackAlertNotifier
from commands.slo.service import SloService
from core.config import Settings
from core.errors import DependencyUnavailable
from core.interactions import Interaction, on_action
from core.router import Ack, Invocation, Subcommand, ephemeral
from core.scheduler import JobSpec
from integrations.prometheus import PrometheusClient, PrometheusUnavailable


def prometheus_from(settings: Settings) -> PrometheusClient | None:
    if not settings.prometheus_url:
        return None
    return PrometheusClient(
        settings.prometheus_url,
        token=settings.prometheus_token.get_secret_value() if settings.prometheus_token else None,
        username=settings.prometheus_username,
        password=(
            settings.prometheus_password.get_secret_value()
            if settings.prometheus_password
            else None
        ),
        timeout=settings.prometheus_timeout,
    )


def register(app: AsyncApp, ctx: AppContext) -> SloService:
    if ctx.prometheus is None:
        ctx.prometheus = prometheus_from(ctx.settings)
    service = SloService(ctx.catalog, ctx.clock, ctx.auth, ctx.prometheus)
    ctx.slos = service
    ctx.budget_gate = SloBudgetGate(service)

    async def handle(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        query = service.parse(invocation.actor, invocation.args)  # bad input answers in the ack
        await ack()
        text, blocks = views.slo_report(await service.report(query))
        await respond(**ephemeral(text, blocks))

    ctx.router.add(
        Subcommand(
            name="slo",
            summary="SLOs: SLI, error budget left, burn rates and trend, worst first",
            usage=["slo [SERVICE|TEAM]"],
            handler=handle,
            examples=["/slo", "/slo checkout", "/forge slo payments"],
        )
    )

    async def home(user_id: str) -> list[dict[str, object]]:
        team = ctx.auth.primary_team(user_id)
        if team is None or service.prometheus is None:
            return []
        refs = service.refs([s.name for s in ctx.catalog.services if s.team == team.name])
        if not refs:
            return []
        try:
            items = worst_first(await service.evaluate(refs, ctx.clock.now(), trend=False))
        except PrometheusUnavailable:
            return views.home_section(team.name, None)
        return views.home_section(team.name, items)

    ctx.home_sections.append(home)

    alerts = BurnAlerts(ctx.catalog, ctx.db, ctx.clock, service, SlackAlertNotifier(ctx.slack))
    ctx.slo_alerts = alerts
    scheduler = ctx.scheduler
    if scheduler is not None:

        async def alert_job(slot: object) -> None:
            await alerts.run()

        scheduler.add(
            JobSpec("slo-burn-alerts", ctx.catalog.schedules.slo_alert_interval, alert_job)
        )

    async def reply(
        i: Interaction, text: str, blocks: list[dict[str, object]] | None = None
    ) -> None:
        if i.respond is not None:
            await i.respond(
                **ephemeral(text, blocks),  # type: ignore[arg-type]
                replace_original=False,
            )

    async def show(i: Interaction) -> None:
        await i.ack()
        query = service.parse(i.actor, i.value)
        text, blocks = views.slo_report(await service.report(query))
        await reply(i, text, blocks)

    async def roll_back(i: Interaction) -> None:
        await i.ack()
        name, environment = i.value.split("|")
        rollbacks = ctx.rollbacks
        if rollbacks is None:
            raise DependencyUnavailable("rollbacks are not available in this deployment")
        plan = await rollbacks.plan(i.actor, deploy_parse.RollbackRequest(name, environment, None))
        text, blocks = deploy_views.rollback_confirm(plan)
        await reply(i, text, blocks)

    async def freeze(i: Interaction) -> None:
        await i.ack()
        environment, key = i.value.split("|")
        freezes = ctx.freezes
        if freezes is None:
            raise DependencyUnavailable("freezes are not available in this deployment")
        state = await freezes.freeze(
            i.actor,
            deploy_parse.FreezeRequest(environment, None, f"error budget burn on {key}"),
        )
        if i.respond is not None:
            await i.respond(
                response_type="in_channel",
                text=deploy_views.frozen_text(state),
                replace_original=False,
            )

    on_action(app, ctx.boundary, views.SHOW_SLO, "slo.show", show)
    on_action(app, ctx.boundary, views.ROLLBACK, "slo.rollback", roll_back)
    on_action(app, ctx.boundary, views.FREEZE, "slo.freeze", freeze)
    return service
