"""`/forge changes` and its "Roll back this" button."""

from __future__ import annotations

from functools import partial

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.context import AppContext
from commands.changes import views
from commands.changes.service import ChangesService
from commands.deploy import views as deploy_views
from commands.deploy.rollback import RollbackService
from core.errors import UserInputError
from core.interactions import Interaction, OnAction, listen
from core.router import Ack, Invocation, Subcommand, ephemeral


async def changes(
    service: ChangesService, invocation: Invocation, ack: Ack, respond: AsyncRespond
) -> None:
    query = service.parse(invocation.actor, invocation.args)  # bad input answers in the ack
    await ack()
    text, blocks = views.timeline(await service.timeline(query))
    await respond(**ephemeral(text, blocks))


async def roll_back_this(
    service: ChangesService, rollbacks: RollbackService, i: Interaction
) -> None:
    await i.ack()
    try:
        deployment_id = int(i.value)
    except ValueError:
        raise UserInputError("That button no longer points at a deploy.") from None
    request = await service.rollback_of(deployment_id)
    # The plan checks the clicker's rights now; the confirm button checks them again.
    text, blocks = deploy_views.rollback_confirm(await rollbacks.plan(i.actor, request))
    await i.reply(text, blocks)


def register(app: AsyncApp, ctx: AppContext) -> None:
    ctx.router.add(
        Subcommand(
            name="changes",
            summary="what changed: deploys, rollbacks, freezes, off-hours, environments, SLO alerts",
            usage=["changes [SERVICE|TEAM] [PERIOD]"],
            handler=partial(changes, ctx.changes),
            examples=["/forge changes", "/forge changes checkout 6h", "/forge changes payments 3d"],
        )
    )
    listen(
        app,
        ctx.boundary,
        [
            OnAction(
                views.ROLLBACK_THIS,
                "changes.rollback",
                partial(roll_back_this, ctx.changes, ctx.rollbacks),
            ),
        ],
    )
