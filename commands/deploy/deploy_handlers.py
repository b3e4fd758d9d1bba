"""Slack listeners of `/forge deploy`: the command, the form, the confirmation dialog and the
second person's Approve/Deny. Every rule lives in `DeployService`; these only translate."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.deploy import parse, views
from commands.deploy.freeze import FreezeService
from commands.deploy.history import version_of
from commands.deploy.notifications import SlackApprovalNotifier
from commands.deploy.runner import RolloutRunner
from commands.deploy.service import DeployService, Started, StartKind
from core.auth import Actor
from core.errors import ForgebotError, UserInputError
from core.interactions import Interaction, on_action, on_block_action, on_view
from core.router import Ack, Invocation, Subcommand, ephemeral
from integrations.slack.blocks import state_value
from storage.models import Operation


def _request(metadata: dict[str, Any]) -> parse.DeployRequest:
    return parse.DeployRequest(
        str(metadata["service"]),
        parse.parse_version(str(metadata["version"])),
        str(metadata["environment"]),
        bool(metadata.get("hotfix")),
    )


def _selected(values: dict[str, Any], block: str) -> str:
    return state_value(values, block).strip()


REQUEST = "deploy.request"
"""An acked deploy request (the command or the confirmed dialog), durable before its gates run:
see `OperationRunner.accept`."""

Reply = tuple[str, list[dict[str, Any]] | None]


def _request_payload(
    actor: Actor, request: parse.DeployRequest, *, channel: str, key: str, reason: str, via: str
) -> dict[str, Any]:
    return {
        "actor": actor.user_id,
        "slack_team_id": actor.slack_team_id,
        "enterprise_id": actor.enterprise_id,
        "service": request.service,
        "version": request.version.text,
        "environment": request.environment,
        "hotfix": request.hotfix,
        "channel": channel,
        "key": key,
        "reason": reason,
        "via": via,
    }


def register(
    app: AsyncApp, ctx: AppContext, freezes: FreezeService, rollouts: RolloutRunner
) -> DeployService:
    deploys = DeployService(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.auth,
        ctx.audit,
        ctx.operations,
        ctx.kube,
        freezes,
        rollouts,
        SlackApprovalNotifier(ctx.slack),
        budget_gate=lambda: ctx.budget_gate,
        gitops=ctx.gitops,
    )
    deploys.register_operations()
    ctx.deploys = deploys
    catalog, boundary, client = ctx.catalog, ctx.boundary, ctx.slack_client

    async def review_in_modal(
        actor: Actor, request: parse.DeployRequest, channel: str, trigger_id: str
    ) -> None:
        """Open a dialog at once (the trigger expires in 3 s), then fill it with the gates."""
        opened = await client.views_open(
            trigger_id=trigger_id, view=views.loading_modal(request.service, request.environment)
        )
        await fill_review(actor, request, channel, str(opened["view"]["id"]))

    async def fill_review(
        actor: Actor, request: parse.DeployRequest, channel: str, view_id: str
    ) -> None:
        try:
            found = await deploys.plan(actor, request)
        except ForgebotError as exc:
            await client.views_update(view_id=view_id, view=views.error_modal(str(exc)))
            raise
        view = views.blocked_modal(found) if found.blocked else views.confirm_modal(found, channel)
        await client.views_update(view_id=view_id, view=view)

    def _started_reply(result: Started) -> str:
        if result.kind is StartKind.AWAITING_APPROVAL and result.approval is not None:
            return views.awaiting_text(result.approval)
        return views.started_text(result.plan, result.kind is StartKind.ALREADY)

    # --- /forge deploy ----------------------------------------------------------------------
    async def deploy(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        if not invocation.args:
            await ack()
            await client.views_open(
                trigger_id=invocation.trigger_id,
                view=views.deploy_form(catalog, invocation.channel_id),
            )
            return
        request = parse.parse_deploy(invocation.args)
        await ack()
        environment = catalog.environment(request.environment)
        if environment is not None and environment.policy.confirm:
            await review_in_modal(
                invocation.actor, request, invocation.channel_id, invocation.trigger_id
            )
            return
        key = f"deploy:{invocation.trigger_id}"
        accepted = await ctx.operations.accept(
            REQUEST,
            _request_payload(
                invocation.actor,
                request,
                channel=invocation.channel_id,
                key=key,
                reason="",
                via="command",
            ),
            lambda: from_command(invocation.actor, request, invocation.channel_id, key),
            idempotency_key=f"{REQUEST}:{key}",
            actor_user_id=invocation.actor.user_id,
            channel_id=invocation.channel_id,
        )
        if accepted.value is not None:  # a retry of the same request gets no second answer
            await respond(**ephemeral(*accepted.value))

    async def from_command(
        actor: Actor, request: parse.DeployRequest, channel: str, key: str
    ) -> Reply:
        """The gates, then the start or what stands in its way, as the reply to show."""
        found = await deploys.plan(actor, request)
        if found.blocked:
            return views.deploy_blocked(found)
        if found.asks_first:
            return views.deploy_needs_review(found, channel)
        result = await deploys.submit(actor, request, reason="", channel=channel, key=key)
        if result.kind is StartKind.AWAITING_APPROVAL and result.approval is not None:
            return views.awaiting_text(result.approval), None
        return views.started_text(found, result.kind is StartKind.ALREADY), None

    async def resume_request(operation: Operation) -> dict[str, Any]:
        """Recovery of an accepted request a crash interrupted: do it, and tell the person."""
        p = operation.payload
        actor = Actor(
            str(p["actor"]), str(p.get("slack_team_id", "")), str(p.get("enterprise_id", ""))
        )
        request = _request(p)
        channel, key = str(p["channel"]), str(p["key"])
        prefix = ":arrows_counterclockwise: forgebot restarted while handling your deploy. "
        try:
            if p.get("via") == "dialog":
                result = await deploys.submit(
                    actor, request, reason=str(p.get("reason", "")), channel=channel, key=key
                )
                text, blocks = _started_reply(result), None
            else:
                text, blocks = await from_command(actor, request, channel, key)
        except ForgebotError as exc:
            text, blocks = str(exc), None
            await say(actor.user_id, channel, prefix + text, blocks)
            raise
        await say(actor.user_id, channel, prefix + text, blocks)
        return {"answered": True}

    async def say(
        user: str, channel: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        if channel:
            await ctx.slack.post_ephemeral(channel, user, text, blocks)
        else:
            await ctx.slack.dm(user, text, blocks)

    ctx.operations.register(REQUEST, resume_request)

    ctx.router.add(
        Subcommand(
            name="deploy",
            summary="deploy a service version; progress in one message, Roll back now on failure",
            usage=["deploy", "deploy SERVICE VERSION to ENV [hotfix]"],
            handler=deploy,
            examples=[
                "/deploy checkout 1.4.2 to staging",
                "/deploy checkout sha256:… to prod",
                "/deploy",
            ],
        )
    )

    # --- the review button (non-confirming environments with a gate to pass) ----------------
    async def review(i: Interaction) -> None:
        await i.ack()
        metadata = json.loads(i.value)
        await review_in_modal(i.actor, _request(metadata), str(metadata["channel"]), i.trigger_id)

    on_action(app, boundary, views.DEPLOY_REVIEW, "deploy.review", review)

    # --- the form (`/deploy` with no arguments) ---------------------------------------------
    async def service_chosen(i: Interaction) -> None:
        await i.ack()
        service = catalog.service(_selected(i.values, views.FORM_SERVICE))
        suggestions: list[str] = []
        if service is not None:
            for workload in list(service.workloads.values())[:1]:
                try:
                    found = await ctx.kube.revisions(
                        workload.cluster, workload.namespace, workload.deployment
                    )
                except ForgebotError:
                    found = []  # suggestions are a convenience; the form works without them
                for revision in found[:5]:
                    image = revision.images.get(workload.container, "")
                    if image and version_of(image) not in suggestions:
                        suggestions.append(version_of(image))
        metadata = json.loads(i.view.get("private_metadata") or "{}")
        await client.views_update(
            view_id=i.view.get("id", ""),
            hash=i.view.get("hash"),
            view=views.deploy_form(
                catalog,
                str(metadata.get("channel", "")),
                service.name if service else None,
                suggestions,
            ),
        )

    on_block_action(
        app,
        boundary,
        {"block_id": views.FORM_SERVICE, "action_id": "value"},
        "deploy.form.service",
        service_chosen,
    )

    async def form_submitted(i: Interaction) -> None:
        values = i.values
        service = _selected(values, views.FORM_SERVICE)
        environment = _selected(values, views.FORM_ENVIRONMENT)
        version_text = _selected(values, views.FORM_VERSION)
        hotfix = bool(
            ((values.get(views.FORM_HOTFIX) or {}).get("value") or {}).get("selected_options")
        )
        try:
            version = parse.parse_version(version_text)
        except UserInputError as exc:
            await i.ack(response_action="errors", errors={views.FORM_VERSION: str(exc)[:150]})
            return
        entry = catalog.service(service)
        if entry is not None and environment not in entry.workloads:
            where = ", ".join(entry.workloads)
            await i.ack(
                response_action="errors",
                errors={views.FORM_ENVIRONMENT: f"{service} runs in {where}"},
            )
            return
        request = parse.DeployRequest(service, version, environment, hotfix)
        await i.ack(response_action="update", view=views.loading_modal(service, environment))
        metadata = json.loads(i.view.get("private_metadata") or "{}")
        await fill_review(i.actor, request, str(metadata.get("channel", "")), i.view.get("id", ""))

    on_view(app, boundary, views.DEPLOY_FORM_VIEW, "deploy.form", form_submitted)

    # --- the confirmation dialog ------------------------------------------------------------
    async def confirmed(i: Interaction) -> None:
        metadata = json.loads(i.view.get("private_metadata") or "{}")
        if "service" not in metadata:
            await i.ack()  # a loading, blocked or error dialog has nothing to submit
            return
        reason = _selected(i.values, views.REASON)
        asks_reason = any(b.get("block_id") == views.REASON for b in i.view.get("blocks", []))
        if asks_reason and not reason:
            # Said on the field, with the dialog still open, not after it has closed.
            await i.ack(
                response_action="errors",
                errors={views.REASON: "Give a reason: it is kept in the audit log."},
            )
            return
        await i.ack()
        request = _request(metadata)
        channel = str(metadata.get("channel", ""))
        key = f"deploy:{i.view.get('id')}"
        accepted = await ctx.operations.accept(
            REQUEST,
            _request_payload(
                i.actor, request, channel=channel, key=key, reason=reason, via="dialog"
            ),
            lambda: deploys.submit(i.actor, request, reason=reason, channel=channel, key=key),
            idempotency_key=f"{REQUEST}:{key}",
            actor_user_id=i.actor.user_id,
            channel_id=channel,
        )
        if accepted.value is not None:  # a retry of the same submission gets no second answer
            await say(i.actor.user_id, channel, _started_reply(accepted.value))

    on_view(app, boundary, views.DEPLOY_CONFIRM_VIEW, "deploy.confirm", confirmed)

    # --- the second person ------------------------------------------------------------------
    async def approve(i: Interaction) -> None:
        await i.ack()
        await deploys.decide(i.actor, int(i.value), approve=True)

    async def deny(i: Interaction) -> None:
        await i.ack()
        # Refused (or already decided) before the dialog opens, not after it is filled in.
        approval = await deploys.answerable(i.actor, int(i.value))
        await ctx.slack_client.views_open(trigger_id=i.trigger_id, view=views.deny_modal(approval))

    async def deny_reason(i: Interaction) -> None:
        reason = _selected(i.values, views.REASON)
        if not reason:
            await i.ack(
                response_action="errors",
                errors={views.REASON: "Say why, so the requester knows what to change."},
            )
            return
        await i.ack()
        approval_id = int(json.loads(i.view.get("private_metadata") or "{}").get("approval_id", 0))
        await deploys.decide(i.actor, approval_id, approve=False, note=reason)

    on_view(app, boundary, views.DEPLOY_DENY_VIEW, "deploy.deny", deny_reason)

    on_action(app, boundary, views.DEPLOY_APPROVE, "deploy.approve", approve)
    on_action(app, boundary, views.DEPLOY_DENY, "deploy.deny.open", deny)
    return deploys
