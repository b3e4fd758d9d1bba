"""`/forge slo` (alias `/slo`), the alert buttons, the deploy gate and the alert job."""

from __future__ import annotations

import json
from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.deploy import parse as deploy_parse
from commands.deploy import views as deploy_views
from commands.deploy.freeze import FreezeService
from commands.slo import views
from commands.slo.alerts import BurnAlerts
from commands.slo.budget import worst_first
from commands.slo.gate import SloBudgetGate
from commands.slo.notifications import SlackAlertNotifier
from commands.slo.service import SloService
from core.config import Settings
from core.durations import parse_duration
from core.errors import DependencyUnavailable, UserInputError
from core.interactions import Interaction, on_action, on_view
from core.router import Ack, Invocation, Subcommand, ephemeral
from core.scheduler import JobSpec
from core.times import shown
from integrations.prometheus import PrometheusClient, PrometheusUnavailable
from integrations.slack.web import SlackOutbox


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


def register(app: AsyncApp, ctx: AppContext, freezes: FreezeService) -> SloService:
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

    on_action(app, ctx.boundary, views.SHOW_SLO, "slo.show", show)
    on_action(app, ctx.boundary, views.ROLLBACK, "slo.rollback", roll_back)
    on_action(app, ctx.boundary, views.FREEZE, "slo.freeze.open", partial(ask_freeze, freezes))
    on_view(
        app,
        ctx.boundary,
        views.FREEZE_VIEW,
        "slo.freeze",
        partial(freeze_service, freezes, ctx.slack),
    )
    return service


async def ask_freeze(freezes: FreezeService, i: Interaction) -> None:
    """ "Freeze deploys" on a burn alert: for which service is in the alert; how long is asked."""
    await i.ack()
    environment, _, key = i.value.partition("|")
    service = key.partition("/")[0]
    # Refused before the dialog opens, not after it is filled in.
    freezes.check_may_freeze(i.actor, environment, service)
    ends = freezes.clock.now() + parse_duration(views.FREEZE_DEFAULT)
    await i.client.views_open(
        trigger_id=i.trigger_id,
        view=views.freeze_modal(service, environment, key, i.channel_id, shown(ends)),
    )


async def freeze_service(freezes: FreezeService, slack: SlackOutbox, i: Interaction) -> None:
    """The dialog's answer: freeze the alert's service for the chosen time, say so in the
    alert's channel (service, end with its zone, who, why)."""
    await i.ack()
    asked = json.loads(i.view.get("private_metadata") or "{}")
    choice = (i.values.get(views.FREEZE_FOR, {}).get("value") or {}).get("selected_option") or {}
    chosen = str(choice.get("value") or views.FREEZE_DEFAULT)
    if chosen not in dict(views.FREEZE_CHOICES):
        raise UserInputError("Choose how long to freeze from the list.")
    duration = parse_duration(chosen)
    state = await freezes.freeze(
        i.actor,
        deploy_parse.FreezeRequest(
            str(asked.get("environment", "")),
            duration,
            f"error budget burn on {asked.get('slo', '')} (SLO burn alert)",
            service=str(asked.get("service", "")),
        ),
    )
    channel = str(asked.get("channel") or "")
    if channel:
        await slack.post(channel, deploy_views.frozen_text(state))
