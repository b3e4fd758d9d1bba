"""Slack listeners for off-hours: ack fast, call the service, render with views. Its jobs
(reconcile, weekly summary) are scheduled by the composition root."""

from __future__ import annotations

from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.offhours import parse, views
from commands.offhours.service import OffhoursService
from core.interactions import Interaction, OnAction, listen
from core.router import Ack, Invocation, Subcommand, ephemeral, usage_lines


async def offhours(
    service: OffhoursService, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
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
        override = views.override_text(setting, service.clock.now(), resolved.zone)
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


async def wake(
    service: OffhoursService, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    """`/forge env wake ENV [for 3h]`: a verb of `/env` that off-hours answers."""
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


async def choice(service: OffhoursService, i: Interaction) -> None:
    """A reminder's buttons: keep it up for the evening, let it sleep, and so on."""
    await i.ack()
    environment, _, shutdown = i.value.partition("|")
    chosen = views.CHOICES[str(i.action.get("action_id", ""))]
    message = await service.choose(i.actor, environment, shutdown, chosen)
    if i.respond is not None:
        await i.respond(
            text=f":white_check_mark: {message} (<@{i.actor.user_id}>)",
            replace_original=True,
        )


async def home_section(service: OffhoursService, user_id: str) -> list[dict[str, Any]]:
    return views.home_section(await service.states_of(user_id))


def register(app: AsyncApp, ctx: AppContext) -> None:
    service = ctx.offhours
    ctx.router.add(
        Subcommand(
            name="offhours",
            summary="off-hours schedules, reminders and the savings report",
            usage=usage_lines(parse.USAGE),
            handler=partial(offhours, service),
            examples=[
                '/forge offhours set pv-checkout "Mon-Fri 08:00-19:00 Europe/Berlin"',
                "/forge offhours report payments 30d",
                "/forge env wake pv-checkout for 3h",
            ],
        )
    )
    # `/forge env wake` belongs to the env command, which dispatches its extra verbs here.
    ctx.env_verbs["wake"] = partial(wake, service)
    listen(
        app,
        ctx.boundary,
        [
            OnAction(action_id, f"offhours.{chosen}", partial(choice, service))
            for action_id, chosen in views.CHOICES.items()
        ],
    )
