"""Builds the slack-bolt AsyncApp and registers every capability on it.

Request signatures are verified by `bot.server` on the raw body before bolt sees anything,
so bolt's own verification (which logs bodies on failure) is off. Authorization of the bot
token is static: no `auth.test` round trip ever sits in front of an ack.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse

from bot.context import AppContext, HomeSection
from commands.alerts import handlers as alert_handlers
from commands.changes import handlers as changes_handlers
from commands.cost import handlers as cost_handlers
from commands.deploy import handlers as deploy_handlers
from commands.deploy.api import deployments_route
from commands.diagnostics import handlers as diagnostics_handlers
from commands.dora import handlers as dora_handlers
from commands.environments import handlers as environment_handlers
from commands.help import handlers as help_handlers
from commands.home import handlers as home_handlers
from commands.home import platform as platform_home
from commands.incidents import handlers as incident_handlers
from commands.offhours import handlers as offhours_handlers
from commands.previews import handlers as preview_handlers
from commands.slo import handlers as slo_handlers

log = logging.getLogger(__name__)

SLASH_COMMANDS = re.compile(r"^/(forge|env|deploy|rollback|slo|cost)$")


def _id_of(value: object) -> str:
    """`team` / `enterprise` arrive as an object with an id, or (in some payloads) the id."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return value if isinstance(value, str) else ""


def _allowed(ctx: AppContext, body: dict[str, Any]) -> str | None:
    """Why this request is refused, or None. Checks only signed body fields, no I/O.

    Allow-lists deny by default: with one set, a request that does not say which workspace
    or organisation it comes from is refused, not served."""
    settings = ctx.settings
    app_id = str(body.get("api_app_id", ""))
    if settings.allowed_app_ids and app_id not in settings.allowed_app_ids:
        return "this request is for another Slack app"
    user = body.get("user") if isinstance(body.get("user"), dict) else {}
    team_ids = {str(body.get("team_id") or ""), _id_of(body.get("team"))}
    team_ids |= {str(user.get("team_id") or "")} if user else set()
    team_ids.discard("")
    if settings.allowed_team_ids and (
        not team_ids or not team_ids <= set(settings.allowed_team_ids)
    ):
        return "forgebot is not enabled for your workspace"
    enterprise = str(body.get("enterprise_id") or "") or _id_of(body.get("enterprise"))
    if settings.allowed_enterprise_ids and enterprise not in settings.allowed_enterprise_ids:
        return "forgebot is not enabled for your organisation"
    return None


def build_bolt_app(
    ctx: AppContext, *, bot_user_id: str | None = None, bot_id: str | None = None
) -> AsyncApp:
    bot_token = (
        ctx.settings.slack_bot_token.get_secret_value() if ctx.settings.slack_bot_token else ""
    )

    async def authorize(
        enterprise_id: str | None, team_id: str | None, **_: Any
    ) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=bot_token,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
        )

    app = AsyncApp(
        client=ctx.slack_client,
        authorize=authorize,
        request_verification_enabled=False,
        process_before_response=False,
        logger=logging.getLogger("slack_bolt"),
    )

    @app.middleware
    async def allow_list(body: dict[str, Any], next: Any) -> BoltResponse | None:
        reason = _allowed(ctx, body)
        if reason is None:
            await next()
            return None
        log.warning("refused a request: %s", reason)
        if body.get("type") in ("event_callback", "url_verification"):
            return BoltResponse(status=200, body="")
        refusal = {"response_type": "ephemeral", "text": f":no_entry: {reason}."}
        return BoltResponse(
            status=200, body=json.dumps(refusal), headers={"content-type": "application/json"}
        )

    app.command(SLASH_COMMANDS)(ctx.router.dispatch)

    help_handlers.register(ctx)
    environments = environment_handlers.register(app, ctx, ctx.kube)
    dora_handlers.register(ctx)
    deploy_handlers.register(app, ctx)
    offhours = offhours_handlers.register(app, ctx)
    preview_handlers.register(app, ctx, environments, offhours)
    slos = slo_handlers.register(app, ctx)
    cost_handlers.register(ctx)
    changes = changes_handlers.register(app, ctx)
    diagnostics_handlers.register(ctx, slos)
    incidents = incident_handlers.build_service(ctx, changes)
    incident_handlers.register(app, ctx, incidents)
    alert_handlers.register(app, ctx, alert_handlers.build_service(ctx, changes, slos), incidents)
    api_token = ctx.settings.api_token.get_secret_value() if ctx.settings.api_token else None
    ctx.routes.append(
        ("POST", "deployments", deployments_route(ctx.catalog, ctx.db, ctx.clock, api_token))
    )
    platform_home.register(ctx)
    home_sections: list[HomeSection] = ctx.home_sections
    home_handlers.register(app, ctx, home_sections)
    return app
