"""Slack listeners of the deploy capability: `/deploy` (the command, the form, the confirmation
dialog, the second person's Approve/Deny), `/rollback`, history, freeze and unfreeze.

Every listener is a named function of this module taking the capability's `DeployParts` first;
`register` is the table that binds them. Every rule lives in the services; these only translate.

A state-changing click or submission (a deploy, Approve, Deny, "Roll back now") is durable
before any slow work: right after the ack its request row is written (`OperationRunner.accept`),
so a Slack retry or a double click is recognised before the gates run, and after a restart
recovery runs the request again (the `resume_*` functions) and tells the person the outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.context import AppContext
from commands.deploy import canary, parse, views
from commands.deploy.freeze import FreezeService
from commands.deploy.gitops import GitOpsDelivery
from commands.deploy.history import HistoryService
from commands.deploy.notifications import (
    PersonNotifier,
)
from commands.deploy.rollback import RollbackService
from commands.deploy.service import REASON_MISSING, DeployService, Started, StartKind
from commands.deploy.workloads import workload
from core.auth import Actor
from core.catalog import Catalog
from core.errors import ForgebotError, UserInputError
from core.interactions import Interaction, listen, on_action, on_block_action, on_view
from core.operations import OperationRunner
from core.router import Ack, Invocation, Subcommand, ephemeral
from integrations.slack.blocks import state_value
from storage.models import Operation

REQUEST = "deploy.request"
"""An acked deploy request (the command or the confirmed dialog), durable before its gates run."""
DECISION = "deploy.decision"
"""An acked Approve, or a submitted Deny, of a deploy waiting for a second person."""
ROLLBACK_REQUEST = "deploy.rollback.request"
"""An acked "Roll back now", durable before the rollback is planned."""

RESTARTED = ":arrows_counterclockwise: forgebot restarted while handling your {what}. "

Reply = tuple[str, list[dict[str, Any]] | None]


@dataclass(frozen=True)
class DeployParts:
    """What the listeners of this capability use (built once, in `register`)."""

    catalog: Catalog
    client: AsyncWebClient
    person: PersonNotifier
    operations: OperationRunner
    freezes: FreezeService
    gitops: GitOpsDelivery
    revisions: HistoryService
    rollbacks: RollbackService
    deploys: DeployService


# --- the payloads of the acked requests (durable rows) -----------------------------------------
class _Acked(BaseModel):
    model_config = ConfigDict(frozen=True)

    actor: str
    slack_team_id: str = ""
    enterprise_id: str = ""
    channel: str = ""

    @property
    def who(self) -> Actor:
        return Actor(self.actor, self.slack_team_id, self.enterprise_id)

    @classmethod
    def by(cls, actor: Actor, **fields: Any) -> Self:
        return cls(
            actor=actor.user_id,
            slack_team_id=actor.slack_team_id,
            enterprise_id=actor.enterprise_id,
            **fields,
        )


class AcceptedDeploy(_Acked):
    service: str
    version: str
    environment: str
    hotfix: bool = False
    key: str
    reason: str = ""
    via: Literal["command", "dialog"] = "command"
    """`command`: plan, then start or answer what stands in the way; `dialog`: the confirmed
    dialog's go (planned again, then started)."""

    @property
    def request(self) -> parse.DeployRequest:
        return parse.DeployRequest(
            self.service, parse.parse_version(self.version), self.environment, self.hotfix
        )


class AcceptedDecision(_Acked):
    approval_id: int
    approve: bool
    note: str = ""


class AcceptedRollback(_Acked):
    service: str
    environment: str
    revision: int | None = None
    key: str


def _deploy_row(
    actor: Actor,
    request: parse.DeployRequest,
    *,
    channel: str,
    key: str,
    reason: str,
    via: Literal["command", "dialog"],
) -> AcceptedDeploy:
    return AcceptedDeploy.by(
        actor,
        service=request.service,
        version=request.version.text,
        environment=request.environment,
        hotfix=request.hotfix,
        channel=channel,
        key=key,
        reason=reason,
        via=via,
    )


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    found = json.loads(view.get("private_metadata") or "{}")
    return found if isinstance(found, dict) else {}


def _request_of(metadata: dict[str, Any]) -> parse.DeployRequest:
    return parse.DeployRequest(
        str(metadata["service"]),
        parse.parse_version(str(metadata["version"])),
        str(metadata["environment"]),
        bool(metadata.get("hotfix")),
    )


def _selected(values: dict[str, Any], block: str) -> str:
    return state_value(values, block).strip()


def _started_reply(result: Started) -> str:
    if result.kind is StartKind.AWAITING_APPROVAL and result.approval is not None:
        return views.awaiting_text(result.approval)
    return views.started_text(result.plan, result.kind is StartKind.ALREADY)


# --- /forge deploy -------------------------------------------------------------------------------
async def deploy(
    parts: DeployParts, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    if not invocation.args:
        await ack()
        await parts.client.views_open(
            trigger_id=invocation.trigger_id,
            view=views.deploy_form(parts.catalog, invocation.channel_id),
        )
        return
    request = parse.parse_deploy(invocation.args)
    await ack()
    if parts.deploys.confirms(request):
        await _review_in_modal(
            parts, invocation.actor, request, invocation.channel_id, invocation.trigger_id
        )
        return
    key = f"deploy:{invocation.trigger_id}"
    row = _deploy_row(
        invocation.actor, request, channel=invocation.channel_id, key=key, reason="", via="command"
    )
    accepted = await parts.operations.accept(
        REQUEST,
        row.model_dump(),
        partial(_plan_and_start, parts, row),
        idempotency_key=f"{REQUEST}:{key}",
        actor_user_id=invocation.actor.user_id,
        channel_id=invocation.channel_id,
    )
    if accepted.value is not None:  # a retry of the same request gets no second answer
        await respond(**ephemeral(*accepted.value))


async def _plan_and_start(parts: DeployParts, row: AcceptedDeploy) -> Reply:
    """The command's work: plan once, then start, or answer what stands in the way."""
    plan = await parts.deploys.plan(row.who, row.request)
    if plan.blocked:
        return views.deploy_blocked(plan)
    if plan.asks_first:
        return views.deploy_needs_review(plan, row.channel)
    result = await parts.deploys.start(row.who, plan, reason="", channel=row.channel, key=row.key)
    return _started_reply(result), None


async def _review_in_modal(
    parts: DeployParts, actor: Actor, request: parse.DeployRequest, channel: str, trigger_id: str
) -> None:
    """Open a dialog at once (the trigger expires in 3 s), then fill it with the gates."""
    opened = await parts.client.views_open(
        trigger_id=trigger_id, view=views.loading_modal(request.service, request.environment)
    )
    await _fill_review(parts, actor, request, channel, str(opened["view"]["id"]))


async def _fill_review(
    parts: DeployParts, actor: Actor, request: parse.DeployRequest, channel: str, view_id: str
) -> None:
    try:
        found = await parts.deploys.plan(actor, request)
    except ForgebotError as exc:
        await parts.client.views_update(view_id=view_id, view=views.error_modal(str(exc)))
        raise
    view = views.blocked_modal(found) if found.blocked else views.confirm_modal(found, channel)
    await parts.client.views_update(view_id=view_id, view=view)


async def review(parts: DeployParts, i: Interaction) -> None:
    """The "Review and deploy…" / "Break glass…" button of a non-confirming environment."""
    await i.ack()
    metadata = json.loads(i.value)
    await _review_in_modal(
        parts, i.actor, _request_of(metadata), str(metadata["channel"]), i.trigger_id
    )


async def form_service_chosen(parts: DeployParts, i: Interaction) -> None:
    await i.ack()
    service = parts.catalog.service(_selected(i.values, views.FORM_SERVICE))
    suggestions = await parts.revisions.recent_versions(service.name) if service else []
    await parts.client.views_update(
        view_id=i.view.get("id", ""),
        hash=i.view.get("hash"),
        view=views.deploy_form(
            parts.catalog,
            str(_metadata(i.view).get("channel", "")),
            service.name if service else None,
            suggestions,
        ),
    )


async def form_submitted(parts: DeployParts, i: Interaction) -> None:
    values = i.values
    service = _selected(values, views.FORM_SERVICE)
    environment = _selected(values, views.FORM_ENVIRONMENT)
    hotfix = bool(
        ((values.get(views.FORM_HOTFIX) or {}).get("value") or {}).get("selected_options")
    )
    try:
        version = parse.parse_version(_selected(values, views.FORM_VERSION))
    except UserInputError as exc:
        await i.ack(response_action="errors", errors={views.FORM_VERSION: str(exc)[:150]})
        return
    try:
        workload(parts.catalog, service, environment)
    except UserInputError as exc:
        await i.ack(response_action="errors", errors={views.FORM_ENVIRONMENT: str(exc)[:150]})
        return
    request = parse.DeployRequest(service, version, environment, hotfix)
    await i.ack(response_action="update", view=views.loading_modal(service, environment))
    channel = str(_metadata(i.view).get("channel", ""))
    await _fill_review(parts, i.actor, request, channel, i.view.get("id", ""))


async def confirmed(parts: DeployParts, i: Interaction) -> None:
    """The confirmation dialog's go: durable at once, then planned again and started."""
    metadata = _metadata(i.view)
    if "service" not in metadata:
        await i.ack()  # a loading, blocked or error dialog has nothing to submit
        return
    reason = _selected(i.values, views.REASON)
    asks_reason = any(b.get("block_id") == views.REASON for b in i.view.get("blocks", []))
    if asks_reason and not reason:
        # Said on the field, with the dialog still open, not after it has closed.
        await i.ack(response_action="errors", errors={views.REASON: REASON_MISSING})
        return
    await i.ack()
    channel = str(metadata.get("channel", ""))
    key = f"deploy:{i.view.get('id')}"
    row = _deploy_row(
        i.actor, _request_of(metadata), channel=channel, key=key, reason=reason, via="dialog"
    )
    accepted = await parts.operations.accept(
        REQUEST,
        row.model_dump(),
        partial(_submit, parts, row),
        idempotency_key=f"{REQUEST}:{key}",
        actor_user_id=i.actor.user_id,
        channel_id=channel,
    )
    if accepted.value is not None:  # a retry of the same submission gets no second answer
        await parts.person.tell(i.actor.user_id, channel, _started_reply(accepted.value))


async def _submit(parts: DeployParts, row: AcceptedDeploy) -> Started:
    return await parts.deploys.submit(
        row.who, row.request, reason=row.reason, channel=row.channel, key=row.key
    )


async def resume_request(parts: DeployParts, operation: Operation) -> dict[str, Any]:
    """Recovery of an accepted deploy request a crash interrupted: do it, and tell the person."""
    row = AcceptedDeploy.model_validate(operation.payload)
    prefix = RESTARTED.format(what="deploy")
    try:
        if row.via == "dialog":
            text, blocks = _started_reply(await _submit(parts, row)), None
        else:
            text, blocks = await _plan_and_start(parts, row)
    except ForgebotError as exc:
        await parts.person.tell(row.actor, row.channel, prefix + str(exc))
        raise
    await parts.person.tell(row.actor, row.channel, prefix + text, blocks)
    return {"answered": True}


# --- the second person ---------------------------------------------------------------------------
async def approve(parts: DeployParts, i: Interaction) -> None:
    await i.ack()
    await _decide(parts, i, int(i.value), approve=True, note="")


async def deny_opened(parts: DeployParts, i: Interaction) -> None:
    await i.ack()
    # Refused (or already decided) before the dialog opens, not after it is filled in.
    approval = await parts.deploys.answerable(i.actor, int(i.value))
    await parts.client.views_open(trigger_id=i.trigger_id, view=views.deny_modal(approval))


async def deny_submitted(parts: DeployParts, i: Interaction) -> None:
    reason = _selected(i.values, views.REASON)
    if not reason:
        await i.ack(
            response_action="errors",
            errors={views.REASON: "Say why, so the requester knows what to change."},
        )
        return
    await i.ack()
    approval_id = int(_metadata(i.view).get("approval_id", 0))
    await _decide(parts, i, approval_id, approve=False, note=reason)


async def _decide(
    parts: DeployParts, i: Interaction, approval_id: int, *, approve: bool, note: str
) -> None:
    """One Approve (or Deny) per person and request, durable before it is checked: a double
    click or a retry finds the row and is not answered again."""
    verb = "approve" if approve else "deny"
    row = AcceptedDecision.by(
        i.actor, channel=i.channel_id, approval_id=approval_id, approve=approve, note=note
    )
    await parts.operations.accept(
        DECISION,
        row.model_dump(),
        partial(parts.deploys.decide, i.actor, approval_id, approve=approve, note=note),
        idempotency_key=f"{DECISION}:{approval_id}:{i.actor.user_id}:{verb}",
        actor_user_id=i.actor.user_id,
        channel_id=i.channel_id,
    )


async def resume_decision(parts: DeployParts, operation: Operation) -> dict[str, Any]:
    """Recovery of an Approve or Deny a crash interrupted: finish it and tell the person."""
    row = AcceptedDecision.model_validate(operation.payload)
    prefix = RESTARTED.format(what="approval" if row.approve else "denial")
    try:
        approval, started = await parts.deploys.resume_decision(
            row.who, row.approval_id, approve=row.approve, note=row.note
        )
    except ForgebotError as exc:
        await parts.person.tell(row.actor, row.channel, prefix + str(exc))
        raise
    text = views.approval_decided(approval)[0] + "."
    if started is not None:
        text += " " + views.started_text(started.plan, started.kind is StartKind.ALREADY)
    await parts.person.tell(row.actor, row.channel, prefix + text)
    return {"answered": True}


# --- /forge rollback -----------------------------------------------------------------------------
async def rollback(
    parts: DeployParts, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    request = parse.parse_rollback(invocation.args)
    await ack()
    text, blocks = views.rollback_confirm(await parts.rollbacks.plan(invocation.actor, request))
    await respond(**ephemeral(text, blocks))


def _rollback_of(value: str) -> parse.RollbackRequest:
    words = value.split("|")
    if len(words) != 3:
        raise UserInputError("That button no longer works: ask `/forge rollback` again.")
    service, environment, revision = words
    return parse.RollbackRequest(
        service, environment, int(revision) if revision.isdigit() else None
    )


async def rollback_confirmed(parts: DeployParts, i: Interaction) -> None:
    """ "Roll back now" (the confirmation, or a failed deploy's button): durable at once."""
    await i.ack()
    request = _rollback_of(i.value)
    message_ts = str((i.body.get("container") or {}).get("message_ts", ""))
    key = f"rollback:{message_ts}:{i.value}"
    row = AcceptedRollback.by(
        i.actor,
        channel=i.channel_id,
        service=request.service,
        environment=request.environment,
        revision=request.revision,
        key=key,
    )
    accepted = await parts.operations.accept(
        ROLLBACK_REQUEST,
        row.model_dump(),
        partial(parts.rollbacks.confirm, i.actor, request, i.channel_id, key),
        idempotency_key=f"{ROLLBACK_REQUEST}:{key}",
        actor_user_id=i.actor.user_id,
        channel_id=i.channel_id,
    )
    if i.respond is not None:
        note = "Rolling back…" if accepted.value else "That rollback was already started."
        await i.respond(text=note, replace_original=True)


async def resume_rollback(parts: DeployParts, operation: Operation) -> dict[str, Any]:
    """Recovery of a "Roll back now" a crash interrupted: do it, and tell the person."""
    row = AcceptedRollback.model_validate(operation.payload)
    request = parse.RollbackRequest(row.service, row.environment, row.revision)
    prefix = RESTARTED.format(what="rollback")
    try:
        started = await parts.rollbacks.confirm(row.who, request, row.channel, row.key)
    except ForgebotError as exc:
        await parts.person.tell(row.actor, row.channel, prefix + str(exc))
        raise
    text = (
        f"Rolling back {row.service} in {row.environment}; progress follows in this channel."
        if started
        else "That rollback was already started."
    )
    await parts.person.tell(row.actor, row.channel, prefix + text)
    return {"answered": True}


async def rollback_cancelled(parts: DeployParts, i: Interaction) -> None:
    await i.ack()
    service, environment, _ = i.value.split("|")
    if i.respond is not None:
        await i.respond(
            text=f"Not rolled back: {service} in {environment} keeps what it runs.",
            replace_original=True,
        )


# --- history, freeze, unfreeze -------------------------------------------------------------------
async def history(
    parts: DeployParts, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    service, environment = parts.revisions.parse(invocation.args)
    await ack()
    commits = await parts.revisions.commits(service, environment)
    if commits is not None:
        text, blocks = views.commit_history(service, environment, *commits)
    else:
        text, blocks = views.history(
            service, environment, await parts.revisions.history(service, environment)
        )
    await respond(**ephemeral(text, blocks))


async def freeze(
    parts: DeployParts, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    if not invocation.args:
        await ack()
        text, blocks = views.freeze_status(await parts.freezes.status(), parts.freezes.upcoming())
        await respond(**ephemeral(text, blocks))
        return
    request = parse.parse_freeze(invocation.args)
    await ack()
    state = await parts.freezes.freeze(invocation.actor, request)
    windows = await parts.gitops.sync_windows(state.environment)
    # Everyone in the channel sees it: a freeze concerns more people than who set it.
    await respond(response_type="in_channel", text=views.frozen_text(state, windows))


async def unfreeze(
    parts: DeployParts, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    words = invocation.args.split()
    if len(words) != 1:
        raise UserInputError("Say which environment to unfreeze.", usage=parse.FREEZE_USAGE)
    await ack()
    environment = words[0].lower()
    lifted = await parts.freezes.unfreeze(invocation.actor, environment)
    still = await parts.freezes.frozen(environment)
    # Lifting a freeze concerns the channel; finding nothing to lift only the one who asked.
    await respond(
        response_type="in_channel" if lifted else "ephemeral",
        text=views.unfrozen_text(environment, lifted, still),
    )


# --- wiring --------------------------------------------------------------------------------------
def build(ctx: AppContext) -> DeployParts:
    """The listeners' dependencies: services built by the composition root
    (`bot/composition.py`), which other capabilities reach through the context too."""
    return DeployParts(
        ctx.catalog,
        ctx.slack_client,
        PersonNotifier(ctx.slack),
        ctx.operations,
        ctx.freezes,
        ctx.gitops,
        ctx.revisions,
        ctx.rollbacks,
        ctx.deploys,
    )


def _subcommands(parts: DeployParts) -> list[Subcommand]:
    return [
        Subcommand(
            name="deploy",
            summary="deploy a service version; progress in one message, Roll back now on failure",
            usage=["deploy", "deploy SERVICE VERSION to ENV [hotfix]"],
            handler=partial(deploy, parts),
            examples=[
                "/deploy checkout 1.4.2 to staging",
                "/deploy checkout sha256:… to prod",
                "/deploy",
            ],
        ),
        Subcommand(
            name="rollback",
            summary="roll a service back to its previous (or a named) revision; allowed during freezes",
            usage=["rollback SERVICE ENV [to REVISION|VERSION]"],
            handler=partial(rollback, parts),
            examples=["/rollback checkout prod", "/rollback checkout prod to 7"],
        ),
        Subcommand(
            name="history",
            summary="a service's revisions in an environment, and who deployed them",
            usage=["history SERVICE ENV"],
            handler=partial(history, parts),
            examples=["/forge history checkout prod"],
        ),
        Subcommand(
            name="freeze",
            summary="stop deploys to an environment (on-call and platform)",
            usage=["freeze", "freeze ENV [for 2h] REASON"],
            handler=partial(freeze, parts),
            examples=["/forge freeze prod for 2h incident 4411", "/forge freeze"],
        ),
        Subcommand(
            name="unfreeze",
            summary="allow deploys again",
            usage=["unfreeze ENV"],
            handler=partial(unfreeze, parts),
            examples=["/forge unfreeze prod"],
        ),
    ]


def register(app: AsyncApp, ctx: AppContext) -> None:
    parts, boundary = build(ctx), ctx.boundary
    for subcommand in _subcommands(parts):
        ctx.router.add(subcommand)
    on_action(app, boundary, views.DEPLOY_REVIEW, "deploy.review", partial(review, parts))
    on_block_action(
        app,
        boundary,
        {"block_id": views.FORM_SERVICE, "action_id": "value"},
        "deploy.form.service",
        partial(form_service_chosen, parts),
    )
    on_view(app, boundary, views.DEPLOY_FORM_VIEW, "deploy.form", partial(form_submitted, parts))
    on_view(app, boundary, views.DEPLOY_CONFIRM_VIEW, "deploy.confirm", partial(confirmed, parts))
    on_action(app, boundary, views.DEPLOY_APPROVE, "deploy.approve", partial(approve, parts))
    on_action(app, boundary, views.DEPLOY_DENY, "deploy.deny.open", partial(deny_opened, parts))
    on_view(app, boundary, views.DEPLOY_DENY_VIEW, "deploy.deny", partial(deny_submitted, parts))
    on_action(app, boundary, views.ROLLBACK_CONFIRM, "rollback", partial(rollback_confirmed, parts))
    on_action(
        app, boundary, views.ROLLBACK_CANCEL, "rollback.cancel", partial(rollback_cancelled, parts)
    )
    listen(app, boundary, canary.listeners(ctx.canaries))
    ctx.operations.register(REQUEST, partial(resume_request, parts))
    ctx.operations.register(DECISION, partial(resume_decision, parts))
    ctx.operations.register(ROLLBACK_REQUEST, partial(resume_rollback, parts))
