"""`/forge changes` and its "Roll back this" button."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.changes import views
from commands.changes.service import ChangesService
from commands.deploy import views as deploy_views
from commands.deploy.rollback import RollbackService
from core.errors import DependencyUnavailable, UserInputError
from core.interactions import Interaction, on_action
from core.router import Ack, Invocation, Subcommand, ephemeral


def register(app: AsyncApp, ctx: AppContext) -> ChangesService:
    service = ChangesService(ctx.catalog, ctx.db, ctx.clock, ctx.auth, ctx.kube)

    async def handle(invocation: Invocation, ack: Ack, respond: AsyncRespond) -> None:
        query = service.parse(invocation.actor, invocation.args)  # bad input answers in the ack
        await ack()
        text, blocks = views.timeline(await service.timeline(query))
        await respond(**ephemeral(text, blocks))

    ctx.router.add(
        Subcommand(
            name="changes",
            summary="what changed: deploys, rollbacks, freezes, off-hours, environments, SLO alerts",
            usage=["changes [SERVICE|TEAM] [PERIOD]"],
            handler=handle,
            examples=["/forge changes", "/forge changes checkout 6h", "/forge changes payments 3d"],
        )
    )

    async def roll_back_this(i: Interaction) -> None:
        await i.ack()
        try:
            deployment_id = int(i.value)
        except ValueError:
            raise UserInputError("That button no longer points at a deploy.") from None
        rollbacks = ctx.rollbacks
        if not isinstance(rollbacks, RollbackService):
            raise DependencyUnavailable("rollbacks are not available in this deployment")
        request = await service.rollback_of(deployment_id)
        # The plan checks the clicker's rights now; the confirm button checks them again.
        text, blocks = deploy_views.rollback_confirm(await rollbacks.plan(i.actor, request))
        if i.respond is not None:
            await i.respond(**ephemeral(text, blocks), replace_original=False)  # type: ignore[arg-type]

    on_action(app, ctx.boundary, views.ROLLBACK_THIS, "changes.rollback", roll_back_this)
    return service
