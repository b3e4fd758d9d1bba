"""Previews in Slack and on the HTTP API: the webhook routes, `/forge previews [team|all]`, the
buttons of a preview's message, its App Home section and its scheduled resync."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.deploy.runner import RolloutRunner
from commands.environments.service import EnvironmentService
from commands.offhours.service import OffhoursService
from commands.previews import views
from commands.previews.notifications import (
    PreviewAnnouncer,
    PreviewAwareNotifier,
    PreviewRolloutNotifier,
)
from commands.previews.service import PreviewService
from commands.previews.webhooks import github_route, gitlab_route
from core.config import Settings
from core.interactions import Interaction, on_action
from core.router import Ack, Invocation, Subcommand, ephemeral
from core.scheduler import JobSpec
from integrations.codehost.github import GitHubClient
from integrations.codehost.gitlab import GitLabClient
from integrations.codehost.host import CodeHost
from integrations.kubernetes.rollout import RolloutStatus


def code_hosts(settings: Settings) -> dict[str, CodeHost]:
    """The REST clients for which a token is configured."""
    hosts: dict[str, CodeHost] = {}
    if settings.github_token is not None:
        hosts["github"] = GitHubClient(
            settings.github_api_url, settings.github_token.get_secret_value()
        )
    if settings.gitlab_token is not None:
        hosts["gitlab"] = GitLabClient(
            settings.gitlab_api_url, settings.gitlab_token.get_secret_value()
        )
    return hosts


def register(
    app: AsyncApp,
    ctx: AppContext,
    environments: EnvironmentService,
    offhours: OffhoursService | None,
) -> PreviewService:
    settings = ctx.settings
    ctx.codehosts.update(code_hosts(settings))
    service: PreviewService | None = None

    async def progress(namespace: str, status: RolloutStatus | None) -> None:
        if service is not None:
            await service.progress(namespace, status)

    service = PreviewService(
        catalog=ctx.catalog,
        db=ctx.db,
        clock=ctx.clock,
        auth=ctx.auth,
        audit=ctx.audit,
        operations=ctx.operations,
        environments=environments,
        kube=ctx.kube,
        rollouts=RolloutRunner(
            ctx.catalog,
            ctx.db,
            ctx.clock,
            ctx.operations,
            ctx.kube,
            PreviewRolloutNotifier(progress),
        ),
        announcer=PreviewAnnouncer(ctx.slack, ctx.db, ctx.clock),
        hosts=ctx.codehosts,
        offhours=offhours,
    )
    service.register_operations()
    ctx.previews = service
    environments.notify = PreviewAwareNotifier(environments.notify, service.environment_deleted)

    secret = settings.github_webhook_secret
    token = settings.gitlab_webhook_token
    routes = ctx.routes
    routes.append(("POST", "webhooks/github", github_route(service.receive, _plain(secret))))
    routes.append(("POST", "webhooks/gitlab", gitlab_route(service.receive, _plain(token))))

    async def command(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        scope = invocation.args.strip().lower()
        if scope and scope != "all":
            service.check_team(scope)  # a wrong name is answered in the ack
        await ack()
        if scope == "all":
            teams: list[str] | None = None
        elif scope:
            teams = [scope]
        else:
            mine = [t.name for t in ctx.auth.teams_of(invocation.actor.user_id)]
            teams, scope = (mine, "your teams") if mine else (None, "all")
        text, blocks = views.preview_list(await service.list(teams), scope)
        await respond(**ephemeral(text, blocks))

    ctx.router.add(
        Subcommand(
            name="previews",
            summary="pull request previews with their age, cost and state",
            usage=["previews [TEAM|all]"],
            handler=command,
            examples=["/forge previews", "/forge previews payments", "/forge previews all"],
        )
    )

    async def reply(i: Interaction, text: str) -> None:
        if i.respond is not None:
            await i.respond(text=text, response_type="ephemeral", replace_original=False)

    async def extend(i: Interaction) -> None:
        await i.ack()
        await reply(i, await service.extend(i.actor, i.value, timedelta(days=1)))

    async def delete(i: Interaction) -> None:
        await i.ack()
        await reply(i, await service.delete_now(i.actor, i.value))

    async def keep_awake(i: Interaction) -> None:
        await i.ack()
        await reply(i, await service.keep_awake(i.actor, i.value))

    boundary = ctx.boundary
    on_action(app, boundary, views.EXTEND, "preview.extend", extend)
    on_action(app, boundary, views.DELETE, "preview.delete", delete)
    on_action(app, boundary, views.KEEP_AWAKE, "preview.keep_awake", keep_awake)

    async def home(user_id: str) -> list[dict[str, Any]]:
        teams = [t.name for t in ctx.auth.teams_of(user_id)]
        return views.home_section(await service.list(teams)) if teams else []

    ctx.home_sections.append(home)

    scheduler = ctx.scheduler
    if scheduler is not None and ctx.catalog.previews:
        scheduler.add(
            JobSpec("preview-resync", ctx.catalog.schedules.ttl_sweep_interval, service.resync_job)
        )
    return service


def _plain(secret: Any) -> str | None:
    return secret.get_secret_value() if secret is not None else None
