"""`POST /api/alertmanager` (Alertmanager's webhook) and the alert message's buttons."""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta

from aiohttp import web
from core.routes import Handler
from pydantic import ValidationError
from slack_bolt.async_app import AsyncApp

from bot.context import AppContext
from commands.alerts import views
from commands.alerts.service import AlertService
from commands.changes.service import ChangesService
from commands.deploy import views as deploy_views
from commands.deploy.parse import RollbackRequest
from commands.deploy.rollback import RollbackService
from commands.incidents.parse import OpenRequest
from commands.incidents.service import IncidentService
from commands.slo.service import SloService
from core.errors import Conflict, DependencyUnavailable
from core.interactions import Interaction, on_action
from core.router import ephemeral
from integrations.alertmanager.silences import AlertmanagerClient
from integrations.alertmanager.webhook import WebhookMessage
from storage.db import DatabaseUnavailable

log = logging.getLogger(__name__)

PAGE_SEVERITIES = {"critical", "page", "sev1", "p1"}


def build_service(ctx: AppContext, changes: ChangesService, slos: SloService) -> AlertService:
    url = ctx.settings.alertmanager_url
    service = AlertService(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.auth,
        ctx.operations,
        ctx.slack,
        changes,
        slos,
        list(ctx.settings.alert_route_labels),
        AlertmanagerClient(url) if url else None,
    )
    service.register_operations()
    return service


def webhook_route(alerts: AlertService, token: str | None) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not token:
            return web.json_response(
                {"error": "the Alertmanager webhook is disabled: set FORGEBOT_ALERTMANAGER_TOKEN"},
                status=503,
            )
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            message = WebhookMessage.model_validate_json(await request.read())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]
            )
            return web.json_response({"error": problems}, status=400)
        try:
            delivery = await alerts.receive(message)
        except (DatabaseUnavailable, Conflict) as exc:
            # Alertmanager retries a failed notification: nothing is lost.
            log.warning("alert group not stored, Alertmanager will retry: %s", exc)
            return web.json_response({"error": "try again"}, status=503)
        return web.json_response(
            {"status": "ok", "group_id": delivery.group_id, "version": delivery.version}
        )

    return handle


def register(
    app: AsyncApp, ctx: AppContext, alerts: AlertService, incidents: IncidentService
) -> None:
    token = (
        ctx.settings.alertmanager_token.get_secret_value()
        if ctx.settings.alertmanager_token
        else None
    )
    ctx.routes.append(("POST", "alertmanager", webhook_route(alerts, token)))

    async def tell(
        i: Interaction, text: str, blocks: list[dict[str, object]] | None = None
    ) -> None:
        if i.respond is not None:
            await i.respond(**ephemeral(text, blocks), replace_original=False)  # type: ignore[arg-type]

    async def acknowledge(i: Interaction) -> None:
        await i.ack()
        group = await alerts.group_for(i.actor, i.value)
        earlier = await alerts.acknowledge(i.actor, group)
        if earlier:
            await tell(i, f"Already acknowledged by <@{earlier}>.")

    def silence(duration: timedelta) -> object:
        async def handler(i: Interaction) -> None:
            await i.ack()
            group = await alerts.group_for(i.actor, i.value)
            silence_id = await alerts.silence(i.actor, group, duration)
            await tell(i, f"Silence `{silence_id}` created in Alertmanager.")

        return handler

    async def roll_back_last(i: Interaction) -> None:
        await i.ack()
        service, _, environment = i.value.partition("|")
        rollbacks = ctx.rollbacks
        if not isinstance(rollbacks, RollbackService):
            raise DependencyUnavailable("rollbacks are not available in this deployment")
        # The plan checks the clicker's rights; the confirm button checks them again.
        plan = await rollbacks.plan(i.actor, RollbackRequest(service, environment, None))
        text, blocks = deploy_views.rollback_confirm(plan)
        await tell(i, text, blocks)

    async def open_incident(i: Interaction) -> None:
        await i.ack()
        group = await alerts.group_for(i.actor, i.value)
        firing = [a for a in group.alerts.values() if a["status"] == "firing"]
        names = sorted({str(a["name"]) for a in firing}) or ["alert"]
        summary = "; ".join(
            f"{a['name']}: {a['summary']}" if a.get("summary") else str(a["name"]) for a in firing
        )
        severity = (
            "SEV2"
            if group.common_labels.get("severity", "").lower() in PAGE_SEVERITIES
            else ("SEV3")
        )
        where = f" on {group.service}" if group.service else ""
        request = OpenRequest(
            f"{', '.join(names)}{where}"[:150], severity, group.service, summary[:2900]
        )
        incident, created = await incidents.open(
            i.actor,
            request,
            key=f"incident:alert-group:{group.id}",
            impact_started_at=alerts.earliest_start(group),
        )
        note = "Opening an incident" if created else "An incident is already open for this alert"
        await tell(i, f":rotating_light: {note}: #{incident.channel_name}.")
        if created:
            await alerts.note(
                group,
                f":rotating_light: <@{i.actor.user_id}> opened an incident: #{incident.channel_name}",
            )

    on_action(app, ctx.boundary, views.ACKNOWLEDGE, "alert.acknowledge", acknowledge)
    on_action(app, ctx.boundary, views.SILENCE_1H, "alert.silence", silence(timedelta(hours=1)))  # type: ignore[arg-type]
    on_action(app, ctx.boundary, views.SILENCE_4H, "alert.silence", silence(timedelta(hours=4)))  # type: ignore[arg-type]
    on_action(app, ctx.boundary, views.ROLL_BACK_LAST, "alert.rollback", roll_back_last)
    on_action(app, ctx.boundary, views.OPEN_INCIDENT, "alert.incident", open_incident)
