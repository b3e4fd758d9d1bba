"""Slack listeners of the deploy capability: deploy, rollback, history, freeze and unfreeze."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.deploy import deploy_handlers, parse, views
from commands.deploy.freeze import FreezeService
from commands.deploy.gitops import GitOpsDelivery
from commands.deploy.history import HistoryService
from commands.deploy.notifications import SlackRolloutNotifier
from commands.deploy.rollback import RollbackService
from commands.deploy.runner import RolloutRunner
from core.errors import UserInputError
from core.interactions import Interaction, on_action
from core.router import Ack, Invocation, Subcommand, ephemeral


def register(app: AsyncApp, ctx: AppContext) -> FreezeService:
    freezes = FreezeService(ctx.catalog, ctx.db, ctx.clock, ctx.auth)
    ctx.gitops = gitops = GitOpsDelivery(ctx.catalog, ctx.db, ctx.clock, ctx.kube)
    ctx.freezes = freezes

    async def freeze(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        if not invocation.args:
            await ack()
            text, blocks = views.freeze_status(await freezes.status())
            await respond(**ephemeral(text, blocks))
            return
        request = parse.parse_freeze(invocation.args)
        await ack()
        state = await freezes.freeze(invocation.actor, request)
        windows = await gitops.sync_windows(state.environment)
        # Everyone in the channel sees it: a freeze concerns more people than who set it.
        await respond(response_type="in_channel", text=views.frozen_text(state, windows))

    async def unfreeze(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        words = invocation.args.split()
        if len(words) != 1:
            raise UserInputError("Say which environment to unfreeze.", usage=parse.FREEZE_USAGE)
        await ack()
        lifted = await freezes.unfreeze(invocation.actor, words[0].lower())
        still = await freezes.frozen(words[0].lower())
        # Lifting a freeze concerns the channel; finding nothing to lift only the one who asked.
        await respond(
            response_type="in_channel" if lifted else "ephemeral",
            text=views.unfrozen_text(words[0].lower(), lifted, still),
        )

    revisions = HistoryService(ctx.catalog, ctx.db, ctx.kube, gitops)
    rollouts = RolloutRunner(
        ctx.catalog,
        ctx.db,
        ctx.clock,
        ctx.operations,
        ctx.kube,
        SlackRolloutNotifier(ctx.slack),
    )
    ctx.rollouts = rollouts
    rollbacks = RollbackService(
        ctx.catalog, ctx.db, ctx.clock, ctx.auth, ctx.operations, ctx.kube, rollouts, gitops
    )
    rollbacks.register_operations()
    ctx.rollbacks = rollbacks
    deploy_handlers.register(app, ctx, freezes, rollouts)

    async def rollback(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        request = parse.parse_rollback(invocation.args)
        await ack()
        text, blocks = views.rollback_confirm(await rollbacks.plan(invocation.actor, request))
        await respond(**ephemeral(text, blocks))

    async def confirm(i: Interaction) -> None:
        await i.ack()
        service, environment, revision = i.value.split("|")
        plan = await rollbacks.plan(
            i.actor,
            parse.RollbackRequest(
                service, environment, int(revision) if revision.isdigit() else None
            ),
        )
        message_ts = str((i.body.get("container") or {}).get("message_ts", ""))
        started = await rollbacks.start(
            i.actor, plan, i.channel_id, key=f"rollback:{message_ts}:{i.value}"
        )
        if i.respond is not None:
            note = "Rolling back…" if started else "That rollback was already started."
            await i.respond(text=note, replace_original=True)

    on_action(app, ctx.boundary, views.ROLLBACK_CONFIRM, "rollback", confirm)

    async def cancel(i: Interaction) -> None:
        await i.ack()
        service, environment, _ = i.value.split("|")
        if i.respond is not None:
            await i.respond(
                text=f"Not rolled back: {service} in {environment} keeps what it runs.",
                replace_original=True,
            )

    on_action(app, ctx.boundary, views.ROLLBACK_CANCEL, "rollback.cancel", cancel)
    ctx.router.add(
        Subcommand(
            name="rollback",
            summary="roll a service back to its previous (or a named) revision; allowed during freezes",
            usage=["rollback SERVICE ENV [to REVISION|VERSION]"],
            handler=rollback,
            examples=["/rollback checkout prod", "/rollback checkout prod to 7"],
        )
    )

    async def history(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        service, environment = revisions.parse(invocation.args)
        await ack()
        commits = await revisions.commits(service, environment)
        if commits is not None:
            text, blocks = views.commit_history(service, environment, *commits)
        else:
            text, blocks = views.history(
                service, environment, await revisions.history(service, environment)
            )
        await respond(**ephemeral(text, blocks))

    ctx.router.add(
        Subcommand(
            name="history",
            summary="a service's revisions in an environment, and who deployed them",
            usage=["history SERVICE ENV"],
            handler=history,
            examples=["/forge history checkout prod"],
        )
    )
    ctx.router.add(
        Subcommand(
            name="freeze",
            summary="stop deploys to an environment (on-call and platform)",
            usage=["freeze", "freeze ENV [for 2h] REASON"],
            handler=freeze,
            examples=["/forge freeze prod for 2h incident 4411", "/forge freeze"],
        )
    )
    ctx.router.add(
        Subcommand(
            name="unfreeze",
            summary="allow deploys again",
            usage=["unfreeze ENV"],
            handler=unfreeze,
            examples=["/forge unfreeze prod"],
        )
    )
    return freezes
