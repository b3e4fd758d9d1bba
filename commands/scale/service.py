"""The rules of scaling a service: who may, not in a freeze (unless breaking glass), never
against a HorizontalPodAutoscaler, and a durable operation that does it.

The plan is checked when the command arrives and again when a confirmation is pressed; the
operation (written before anything changes) checks the autoscaler once more and sets
`spec.replicas` with a merge patch. Its row is what `/forge changes` lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commands.deploy.freeze import FreezeService
from commands.scale import views
from commands.scale.parse import ScaleRequest
from core.auth import Action, Actor, Authorizer, Target
from core.catalog import Catalog, Workload
from core.clock import Clock
from core.errors import Conflict, NotAuthorized, UserInputError
from core.operations import OperationRunner
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.scaling import DEPLOYMENT, ScalingGateway
from integrations.slack.web import SlackOutbox
from storage.models import Operation

SCALE = "scale"
"""The operation kind; its rows (payload: service, environment, from, to) are the record."""


@dataclass(frozen=True)
class ScalePlan:
    request: ScaleRequest
    current: int
    confirm: bool
    """Whether to ask first (production, or an environment whose policy says so)."""
    frozen: str = ""
    """The freeze broken (its reason), when the request breaks glass."""


@dataclass
class ScaleService:
    catalog: Catalog
    clock: Clock
    auth: Authorizer
    operations: OperationRunner
    kube: KubeGateway
    freezes: FreezeService
    slack: SlackOutbox

    def register_operations(self) -> None:
        self.operations.register(SCALE, self._run)

    def check_may(self, actor: Actor, request: ScaleRequest) -> None:
        decision = self.auth.authorize(actor, Action.SCALE, Target(service=request.service))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.SCALE))

    async def plan(self, actor: Actor, request: ScaleRequest) -> ScalePlan:
        self.check_may(actor, request)
        frozen = await self.freezes.frozen(request.environment, request.service)
        broken = ""
        if frozen is not None:
            if not request.reason:
                raise Conflict(
                    f"{request.environment} is frozen ({frozen.reason}): scaling is refused. "
                    "On-call or the platform team can break glass: add "
                    "`break-glass REASON` to the command."
                )
            glass = self.auth.authorize(actor, Action.BREAK_GLASS, Target(service=request.service))
            if not glass.allowed:
                raise NotAuthorized(glass.explain(Action.BREAK_GLASS))
            broken = frozen.reason
        current = await self._current(request.workload)
        if current == request.replicas:
            raise UserInputError(
                f"{request.service} in {request.environment} already runs "
                f"{views.replicas(current)}: nothing to change."
            )
        environment = self.catalog.environment(request.environment)
        confirm = environment is not None and (
            environment.tier == "prod" or environment.policy.confirm
        )
        return ScalePlan(request, current, confirm, broken)

    async def _current(self, workload: Workload) -> int:
        """The replica count now; refused when an autoscaler owns it."""
        facts = await self.kube.deployment_facts(
            workload.cluster, workload.namespace, workload.deployment
        )
        if facts.autoscalers:
            names = ", ".join(facts.autoscalers)
            raise Conflict(
                f"The HorizontalPodAutoscaler {names} owns the replica count of "
                f"{workload.deployment} in {workload.namespace}: a manual scale would be undone. "
                "Change the autoscaler's minimum and maximum instead."
            )
        return facts.replicas

    async def start(self, actor: Actor, plan: ScalePlan, channel: str, key: str) -> bool:
        """Write the operation (then it runs); False when this request was already started."""
        request = plan.request
        submission = await self.operations.submit(
            SCALE,
            {
                "service": request.service,
                "environment": request.environment,
                "from": plan.current,
                "to": request.replicas,
                "reason": request.reason,
                "frozen": plan.frozen,
                "channel": channel,
            },
            idempotency_key=f"{SCALE}:{key}",
            actor_user_id=actor.user_id,
            channel_id=channel,
        )
        return submission.created

    async def _run(self, operation: Operation) -> dict[str, Any]:
        p = operation.payload
        service, environment = str(p["service"]), str(p["environment"])
        entry = self.catalog.service(service)
        workload = entry.workloads.get(environment) if entry else None
        if workload is None:
            raise UserInputError(f"{service} no longer runs in {environment}.")
        before = await self._current(workload)  # an autoscaler added meanwhile still wins
        to = int(p["to"])
        await ScalingGateway(self.kube).patch(
            workload.cluster,
            workload.namespace,
            DEPLOYMENT,
            workload.deployment,
            {"spec": {"replicas": to}},
        )
        channel = str(p.get("channel") or operation.channel_id)
        if channel:
            await self.slack.post(
                channel,
                views.scaled_text(
                    operation.actor_user_id,
                    service,
                    environment,
                    before,
                    to,
                    str(p.get("reason") or ""),
                    str(p.get("frozen") or ""),
                ),
            )
        return {"from": before, "to": to}
