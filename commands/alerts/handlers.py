"""`POST /api/alertmanager` (Alertmanager's webhook) and the alert message's buttons."""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from functools import partial

from aiohttp import web
from pydantic import ValidationError
from slack_bolt.async_app import AsyncApp

from bot.context import AppContext
from commands.alerts import views
from commands.alerts.service import AlertService
from commands.deploy import views as deploy_views
from commands.deploy.parse import RollbackRequest
from commands.deploy.rollback import RollbackService
from commands.incidents.parse import OpenRequest
from commands.incidents.service import IncidentService
from core.errors import Conflict
from core.interactions import Interaction, OnAction, listen
from core.routes import Handler
from integrations.alertmanager.webhook import WebhookMessage
from storage.db import DatabaseUnavailable

log = logging.getLogger(__name__)

PAGE_SEVERITIES = {"critical", "page", "sev1", "p1"}


def webhook_route(alerts: AlertService, token: str | None) -> Handler:
    return partial(receive_webhook, alerts, token)


async def receive_webhook(
    alerts: AlertService, token: str | None, request: web.Request
) -> web.StreamResponse:
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


async def acknowledge(alerts: AlertService, i: Interaction) -> None:
    await i.ack()
    group = await alerts.group_for(i.actor, i.value)
    earlier = await alerts.acknowledge(i.actor, group)
    if earlier:
        await i.reply(f"Already acknowledged by <@{earlier}>.")


async def silence(alerts: AlertService, duration: timedelta, i: Interaction) -> None:
    await i.ack()
    group = await alerts.group_for(i.actor, i.value)
    silence_id = await alerts.silence(i.actor, group, duration)
    await i.reply(f"Silence `{silence_id}` created in Alertmanager.")


async def roll_back_last(rollbacks: RollbackService, i: Interaction) -> None:
    await i.ack()
    service, _, environment = i.value.partition("|")
    # The plan checks the clicker's rights; the confirm button checks them again.
    plan = await rollbacks.plan(i.actor, RollbackRequest(service, environment, None))
    await i.reply(*deploy_views.rollback_confirm(plan))


async def open_incident(alerts: AlertService, incidents: IncidentService, i: Interaction) -> None:
    await i.ack()
    group = await alerts.group_for(i.actor, i.value)
    firing = [a for a in group.alerts.values() if a["status"] == "firing"]
    names = sorted({str(a["name"]) for a in firing}) or ["alert"]
    summary = "; ".join(
        f"{a['name']}: {a['summary']}" if a.get("summary") else str(a["name"]) for a in firing
    )
    severity = (
        "SEV2" if group.common_labels.get("severity", "").lower() in PAGE_SEVERITIES else "SEV3"
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
    await i.reply(f":rotating_light: {note}: #{incident.channel_name}.")
    if created:
        await alerts.reply(
            group,
            f":rotating_light: <@{i.actor.user_id}> opened an incident: #{incident.channel_name}",
            key=f"incident:{incident.id}",
        )


def register(app: AsyncApp, ctx: AppContext) -> None:
    alerts = ctx.alerts
    listen(
        app,
        ctx.boundary,
        [
            OnAction(views.ACKNOWLEDGE, "alert.acknowledge", partial(acknowledge, alerts)),
            OnAction(
                views.SILENCE_1H, "alert.silence", partial(silence, alerts, timedelta(hours=1))
            ),
            OnAction(
                views.SILENCE_4H, "alert.silence", partial(silence, alerts, timedelta(hours=4))
            ),
            OnAction(
                views.ROLL_BACK_LAST, "alert.rollback", partial(roll_back_last, ctx.rollbacks)
            ),
            OnAction(
                views.OPEN_INCIDENT, "alert.incident", partial(open_incident, alerts, ctx.incidents)
            ),
        ],
    )
