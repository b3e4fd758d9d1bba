"""Argo Rollouts canaries: the buttons of a deploy's progress message (Promote, Promote full,
Abort, Retry) and the error-budget pause.

Each press is checked at click time (the owning team, on-call or platform), runs as a durable
operation under an idempotency key made of what the person saw (the step and the Rollout's
version: a double click acts once), is audited by the router's boundary and, in an incident
channel, lands in the incident's timeline. Promote is refused when the canary has moved on
since the message was drawn, and while the service's error budget burns fast.

While a canary is followed, the follow loop's notifier (`CanaryFollower`) asks the SLO
capability (`ctx.burn_watch`) at most every `burn_check_seconds` whether the budget of the
environment burns fast; if so, forgebot pauses the Rollout (`spec.paused`, the reason on the
Rollout) instead of letting it promote, and the message says why.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from commands.deploy import canary_views, views
from commands.deploy.runner import Change, RolloutNotifier, RolloutRunner
from commands.deploy.workloads import workload as workload_in
from core.auth import Action, Actor, Authorizer, Target
from core.block_limits import escape
from core.catalog import Catalog, Workload
from core.clock import Clock
from core.deploy_gate import BurnWatch
from core.errors import Conflict, NotAuthorized, UserInputError
from core.interactions import Interaction, OnAction
from core.operations import OperationRunner
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.rollout import RolloutStatus
from integrations.kubernetes.rollouts_crd import CanaryStatus, RolloutsApi
from integrations.kubernetes.workload_kinds import RolloutAwareKube
from integrations.slack.web import SlackGateway
from storage import deployments as deployments_repo
from storage import incidents as incidents_repo
from storage.db import Database
from storage.incidents import IncidentEvent, IncidentState
from storage.models import DeployKind, DeploymentRecord, Operation

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
ACT = "canary.action"
RETRY = "canary.retry"
BUDGET_PAUSE = "canary.budget_pause"
_WORDS = {
    canary_views.PROMOTE: "promote",
    canary_views.PROMOTE_FULL: "promote-full",
    canary_views.ABORT: "abort",
    canary_views.RETRY: "retry",
}
_DONE = {
    "promote": "promoted",
    "promote-full": "fully promoted",
    "abort": "aborted",
    "retry": "retried",
}


@dataclass(frozen=True)
class Press:
    """A button press: what the person saw when they pressed."""

    action: str
    service: str
    environment: str
    step: int
    seen: str

    @classmethod
    def parse(cls, action_id: str, value: str) -> Press:
        parts = value.split("|")
        if (
            action_id not in _WORDS
            or len(parts) != 4
            or not parts[2].isdigit()
            or not all(_NAME.fullmatch(p) for p in parts[:2])
        ):
            raise UserInputError("That canary button is not one forgebot drew.")
        return cls(_WORDS[action_id], parts[0], parts[1], int(parts[2]), parts[3])

    @property
    def key(self) -> str:
        return f"canary:{self.action}:{self.service}:{self.environment}:{self.step}:{self.seen}"


@dataclass
class CanaryService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    operations: OperationRunner
    rollouts: RolloutsApi
    runner: RolloutRunner
    burn_watch: Callable[[], BurnWatch | None] = lambda: None
    burn_check_seconds: float = 30.0
    _last_check: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def register_operations(self) -> None:
        self.operations.register(ACT, self._run_recovered)
        self.operations.register(RETRY, self._run_retry)
        self.operations.register(BUDGET_PAUSE, self._run_budget_pause)

    def _workload(self, service: str, environment: str) -> Workload:
        workload = workload_in(self.catalog, service, environment).workload
        if not workload.is_rollout:
            raise UserInputError(f"{service} in {environment} is not an Argo Rollouts canary.")
        return workload

    # --- presses -------------------------------------------------------------------------------
    async def press(self, actor: Actor, press: Press, channel: str) -> str:
        """Check, then act once; what to tell the person."""
        workload = self._workload(press.service, press.environment)
        decision = self.auth.authorize(actor, Action.CANARY, Target(service=press.service))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.CANARY))
        if press.action in ("promote", "promote-full"):
            burning = await self._burning(press.service, press.environment)
            if burning:
                raise Conflict(
                    f"Not promoted: the error budget of {press.service} in {press.environment} "
                    f"is burning fast ({escape(burning)}). Abort, or promote once it recovers."
                )
        payload = {
            "press": press.__dict__,
            "actor": actor.user_id,
            "channel": channel,
        }
        if press.action == "retry":
            submission = await self.operations.submit(
                RETRY,
                payload,
                idempotency_key=press.key,
                actor_user_id=actor.user_id,
                channel_id=channel,
            )
            if not submission.created:
                return "That retry was already started."
            await self._timeline(channel, actor.user_id, press, press.key)
            return f"Retrying the canary of {press.service} in {press.environment}…"
        accepted = await self.operations.accept(
            ACT,
            payload,
            lambda: self._act(workload, press),
            idempotency_key=press.key,
            actor_user_id=actor.user_id,
            channel_id=channel,
        )
        if accepted.duplicate:
            return f"That {press.action} was already done."
        await self._timeline(channel, actor.user_id, press, press.key)
        return f"Canary of {press.service} in {press.environment} {_DONE[press.action]}."

    async def _act(self, workload: Workload, press: Press) -> None:
        where = (workload.cluster, workload.namespace, workload.deployment)
        if press.action == "promote":
            await self.rollouts.promote(*where, press.step)
        elif press.action == "promote-full":
            await self.rollouts.promote_full(*where)
        elif press.action == "abort":
            await self.rollouts.abort(*where)

    async def _run_recovered(self, operation: Operation) -> dict[str, Any]:
        press = Press(**operation.payload["press"])
        await self._act(self._workload(press.service, press.environment), press)
        return {"done": press.action}

    async def _run_retry(self, operation: Operation) -> dict[str, Any]:
        """Clear the abort, then follow the canary again in the failed deploy's message, as a
        new deploy record (the failed one stays failed)."""
        press = Press(**operation.payload["press"])
        workload = self._workload(press.service, press.environment)
        where = (workload.cluster, workload.namespace, workload.deployment)
        last = await self.db.run(
            lambda s: deployments_repo.history(s, press.service, press.environment, limit=1)
        )
        if not last:
            raise Conflict(
                f"There is no deploy of {press.service} in {press.environment} to retry."
            )
        failed = last[0]
        actor = str(operation.payload["actor"])
        record = DeploymentRecord(
            service=failed.service,
            team=failed.team,
            environment=failed.environment,
            kind=DeployKind.DEPLOY,
            version=failed.version,
            previous_version=failed.previous_version,
            actor=actor,
            started_at=self.clock.now(),
            hotfix=failed.hotfix,
        )
        try:
            started = await self.db.run(lambda s: deployments_repo.start(s, record))
        except deployments_repo.RolloutInProgress:
            raise Conflict(
                f"A rollout of {press.service} in {press.environment} is already in progress."
            ) from None
        change = Change(
            DeployKind.DEPLOY,
            failed.service,
            failed.environment,
            failed.previous_version,
            failed.version,
            actor,
            hotfix=failed.hotfix,
        )
        channel = failed.message_channel or str(operation.payload["channel"])

        async def clear_abort() -> None:
            state = (await self.rollouts.status(*where)).canary
            if state is not None and state.aborted:  # a resumed retry finds it cleared
                await self.rollouts.retry(*where)

        status = await self.runner.run(
            started.id or 0,
            change,
            channel,
            failed.message_ts or "",
            clear_abort,
            workload=workload,
        )
        return {"done": status.done}

    # --- the error budget ------------------------------------------------------------------------
    async def _burning(self, service: str, environment: str) -> str | None:
        watch = self.burn_watch()
        if watch is None:
            return None
        return await watch.fast_burn(service, environment)

    async def watch_budget(self, change: Change, status: CanaryStatus) -> None:
        """Pause a running canary whose environment's error budget burns fast."""
        state = status.canary
        if state is None or status.done or status.failed or state.aborted or state.paused:
            return
        now = self.clock.now()
        where = (change.service, change.environment)
        last = self._last_check.get(where)
        if last is not None and (now - last).total_seconds() < self.burn_check_seconds:
            return
        self._last_check[where] = now
        burning = await self._burning(change.service, change.environment)
        if not burning:
            return
        why = f"the error budget is burning fast ({burning}); promote once it recovers"
        key = f"{BUDGET_PAUSE}:{change.service}:{change.environment}:{state.revision}:{state.generation}"
        payload = {"service": change.service, "environment": change.environment, "why": why}
        await self.operations.accept(
            BUDGET_PAUSE,
            payload,
            lambda: self._pause(change.service, change.environment, why),
            idempotency_key=key,
        )

    async def _pause(self, service: str, environment: str, why: str) -> None:
        workload = self._workload(service, environment)
        await self.rollouts.pause(workload.cluster, workload.namespace, workload.deployment, why)

    async def _run_budget_pause(self, operation: Operation) -> dict[str, Any]:
        payload = operation.payload
        await self._pause(str(payload["service"]), str(payload["environment"]), str(payload["why"]))
        return {"paused": True}

    # --- the incident timeline -------------------------------------------------------------------
    async def _timeline(self, channel: str, actor: str, press: Press, key: str) -> None:
        incident = await self.db.run(lambda s: incidents_repo.by_channel(s, channel))
        if incident is None or incident.state != IncidentState.OPEN:
            return
        event = IncidentEvent(
            incident_id=incident.id or 0,
            at=self.clock.now(),
            kind="action",
            actor=actor,
            text=f"{_DONE[press.action]} the canary of {press.service} in {press.environment} "
            f"(at step {press.step + 1})",
            dedupe_key=key[:250],
        )
        await self.db.run(lambda s: incidents_repo.add_event(s, event))


class CanaryFollower:
    """The deploy's notifier, for Rollouts: the canary in the message, and the budget watch on
    every poll. Deployments are passed through untouched."""

    def __init__(self, slack: SlackGateway, inner: RolloutNotifier) -> None:
        self.slack, self.inner = slack, inner
        self.canaries: CanaryService | None = None

    async def started(self, change: Change, channel: str) -> tuple[str, str]:
        return await self.inner.started(change, channel)

    async def progress(
        self, channel: str, ts: str, change: Change, status: RolloutStatus | None, elapsed: float
    ) -> None:
        if not isinstance(status, CanaryStatus):
            await self.inner.progress(channel, ts, change, status, elapsed)
            return
        if self.canaries is not None:
            try:
                await self.canaries.watch_budget(change, status)
            except Exception:  # the watch never stops the follow; it is tried again
                log.warning("the error-budget watch of %s failed", change.service, exc_info=True)
        text, blocks = canary_views.rollout_message(change, status, elapsed)
        await self.slack.update(channel, ts, text, blocks)

    async def finished(
        self,
        channel: str,
        ts: str,
        change: Change,
        status: RolloutStatus,
        elapsed: float,
        team_channel: str,
    ) -> None:
        if not isinstance(status, CanaryStatus):
            await self.inner.finished(channel, ts, change, status, elapsed, team_channel)
            return
        text, blocks = canary_views.rollout_message(change, status, elapsed)
        await self.slack.update(channel, ts, text, blocks)
        if team_channel != channel:
            summary, summary_blocks = views.rollout_announcement(change, status, elapsed)
            await self.slack.post(team_channel, summary, summary_blocks)


# --- Slack ---------------------------------------------------------------------------------------
async def on_canary_button(i: Interaction, canaries: CanaryService) -> None:
    press = Press.parse(str(i.action.get("action_id") or ""), i.value)
    await i.ack()
    note = await canaries.press(i.actor, press, i.channel_id)
    if i.respond is not None:
        await i.respond(text=note, response_type="ephemeral", replace_original=False)


def rollouts_api(kube: KubeGateway) -> RolloutsApi:
    """The Argo Rollouts API of the cluster gateway (shared when the gateway knows Rollouts)."""
    return kube.rollouts if isinstance(kube, RolloutAwareKube) else RolloutsApi(kube)


def listeners(canaries: CanaryService) -> list[OnAction]:
    """The four buttons of a canary's progress message, for the deploy capability's table."""
    return [
        OnAction(
            action_id,
            f"canary.{_WORDS[action_id]}",
            functools.partial(on_canary_button, canaries=canaries),
        )
        for action_id in canary_views.ACTIONS
    ]
