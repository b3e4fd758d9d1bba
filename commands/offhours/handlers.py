"""Slack listeners for off-hours: ack fast, call the service, render with views."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.offhours import parse, views
from commands.offhours.notifications import SlackOffhoursNotifier
from commands.offhours.service import OffhoursService
from core.interactions import Interaction, on_action
from core.router import Ack, Invocation, Subcommand, ephemeral, usage_lines
from core.scheduler import JobSpec
from integrations.aws.resources import AwsResourceGateway, ResourceControl
from integrations.aws.session import AwsClients, AwsConfig
from integrations.kubernetes.argocd_autosync import ArgoAutoSync
from integrations.kubernetes.scaling import ScalingGateway

log = logging.getLogger(__name__)

RECONCILE_JOB = "offhours"
WEEKLY_JOB = "offhours-weekly"
_AWS_HINTS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def _aws(ctx: AppContext) -> ResourceControl | None:
    """Tagged AWS resources sleep too when AWS is configured (an endpoint or credentials)."""
    given = ctx.extras.get("aws_resources")
    if given is not None:
        return given  # type: ignore[no-any-return]
    if ctx.settings.aws_endpoint_url or any(os.environ.get(name) for name in _AWS_HINTS):
        return AwsResourceGateway(AwsClients(AwsConfig.from_settings(ctx.settings)))
    return None


def register(app: AsyncApp, ctx: AppContext) -> OffhoursService:
    service = OffhoursService(
        catalog=ctx.catalog,
        db=ctx.db,
        clock=ctx.clock,
        auth=ctx.auth,
        audit=ctx.audit,
        scaling=ScalingGateway(ctx.kube),
        notify=SlackOffhoursNotifier(ctx.slack, ctx.catalog),
        aws=_aws(ctx),
        autosync=ArgoAutoSync(ctx.kube),
    )
    boundary = ctx.boundary

    async def command(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        cmd = parse.parse_command(invocation.args)
        service.check_team(cmd.team)
        await ack()
        if cmd.verb == "set":
            schedule = await service.set_schedule(invocation.actor, cmd.environment, cmd.schedule)
            await respond(
                **ephemeral(
                    f":calendar: {cmd.environment} now follows `{schedule.canonical()}`. "
                    "Applying it now…"
                )
            )
            outcome = await service.reconcile_environment(cmd.environment)
            state = "awake" if outcome.desired_up else "asleep"
            problem = f" (not yet: {outcome.failures[0]})" if outcome.failures else ""
            await respond(**ephemeral(f"{cmd.environment} is {state}{problem}."))
        elif cmd.verb == "show":
            target, resolved, (setting, next_change) = await service.status(cmd.environment)
            override = views.override_text(setting, ctx.clock.now(), resolved.zone)
            text = views.status(
                target.environment,
                resolved.schedule.canonical() if resolved.schedule else "never",
                resolved.source,
                setting.state,
                next_change,
                resolved.zone,
                override,
            )
            await respond(**ephemeral(text))
        else:
            scope, lines = await service.report(invocation.actor, cmd.team, cmd.period)
            text, blocks = views.report(scope, cmd.period, lines)
            await respond(**ephemeral(text, blocks))

    ctx.router.add(
        Subcommand(
            name="offhours",
            summary="off-hours schedules, reminders and the savings report",
            usage=usage_lines(parse.USAGE),
            handler=command,
            examples=[
                '/forge offhours set pv-checkout "Mon-Fri 08:00-19:00 Europe/Berlin"',
                "/forge offhours report payments 30d",
                "/forge env wake pv-checkout for 3h",
            ],
        )
    )

    async def wake(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        cmd = parse.parse_wake(invocation.args)
        await ack()
        until, zone = await service.wake_for(invocation.actor, cmd.environment, cmd.duration)
        await respond(
            **ephemeral(
                f":sunny: Waking {cmd.environment} until {views.local_day(until, zone)}; it goes "
                "back to its schedule after that."
            )
        )
        outcome = await service.reconcile_environment(cmd.environment)
        if outcome.failures:
            await respond(**ephemeral(f":warning: Not awake yet: {outcome.failures[0]}"))
        else:
            await respond(**ephemeral(f"{cmd.environment} is awake ({outcome.changed} restored)."))

    # `/forge env wake` belongs to the env command; the env router dispatches extra verbs here.
    ctx.env_verbs["wake"] = wake

    async def choice(i: Interaction) -> None:
        await i.ack()
        environment, _, shutdown = i.value.partition("|")
        chosen = views.CHOICES[str(i.action.get("action_id", ""))]
        message = await service.choose(i.actor, environment, shutdown, chosen)
        if i.respond is not None:
            await i.respond(
                text=f":white_check_mark: {message} (<@{i.actor.user_id}>)",
                replace_original=True,
            )

    for action_id in views.CHOICES:
        on_action(app, boundary, action_id, f"offhours.{views.CHOICES[action_id]}", choice)

    scheduler = ctx.scheduler
    if scheduler is not None:
        scheduler.add(
            JobSpec(RECONCILE_JOB, ctx.catalog.schedules.offhours_interval, service.reconcile_job)
        )
        scheduler.add(JobSpec(WEEKLY_JOB, timedelta(days=7), service.weekly_summary))

        async def on_start() -> None:
            # Level-triggered: after any downtime, put everything where the schedule says now.
            await scheduler.run_now(RECONCILE_JOB)

        ctx.startup_hooks.append(on_start)

    async def home(user_id: str) -> list[dict[str, Any]]:
        states = await service.states_of(user_id)
        return views.home_section(states)

    ctx.home_sections.append(home)
    ctx.offhours = service
    return service
