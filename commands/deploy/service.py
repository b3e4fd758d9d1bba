"""`/forge deploy`: every policy gate in one place, then one rollout followed to the end.

A plan is computed from the catalog, the cluster (one read), the freeze state and the error
budget; each gate says whether it passes, blocks, needs a reason from the requester (break
glass in a freeze, overriding an exhausted error budget, a hotfix that skips the budget) or
needs a second person (the two-person rule, break glass). A request is planned once; it is
planned again only when it moves a step after waiting on a person (a dialog, an approval),
because the world may have changed in between.

The rollout itself runs as a durable operation (payload: `RolloutOrder`) keyed by the Slack
interaction that started it, so retries, double clicks and restarts never deploy twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from commands.deploy.freeze import FreezeService, FreezeState
from commands.deploy.gitops import CommitRequest, GitOpsDelivery
from commands.deploy.history import version_of
from commands.deploy.parse import DEPLOY_USAGE, DeployRequest, parse_version
from commands.deploy.runner import Change, RolloutOrder, RolloutRunner
from commands.deploy.workloads import workload
from core.audit import AuditLog, AuditRecord
from core.auth import Action, Actor, Authorizer, Target
from core.block_limits import escape
from core.catalog import Catalog, Environment, Service, Tier, Workload
from core.clock import Clock
from core.deploy_gate import BudgetGate
from core.errors import Conflict, ForgebotError, NotAuthorized, NotFound, UserInputError
from core.operations import OperationRunner
from integrations.kubernetes.gateway import DeploymentFacts, KubeGateway
from storage import deploy_approvals as approvals_repo
from storage import deployments as repo
from storage.db import Database
from storage.models import (
    ApprovalState,
    AuditOutcome,
    DeployApproval,
    DeployKind,
    DeploymentRecord,
    Operation,
)

if TYPE_CHECKING:
    from commands.deploy.notifications import SlackApprovalNotifier

DEPLOY = "deploy.rollout"
REASON_MISSING = "Give a reason: it is kept in the audit log."
HOTFIX = "deploy.hotfix"
"""The audit entry of a hotfix that skipped the error-budget gate, with its reason."""

# Labels and annotations with which GitOps controllers mark what they own.
GITOPS_MARKERS: tuple[tuple[str, str, str], ...] = (
    ("annotation", "argocd.argoproj.io/tracking-id", "Argo CD"),
    ("label", "argocd.argoproj.io/instance", "Argo CD"),
    ("label", "kustomize.toolkit.fluxcd.io/name", "Flux"),
    ("label", "helm.toolkit.fluxcd.io/name", "Flux"),
)


class GateState(StrEnum):
    PASS = "pass"
    INFO = "info"
    BLOCK = "block"
    NEEDS_REASON = "needs_reason"
    NEEDS_APPROVAL = "needs_approval"


@dataclass(frozen=True)
class Gate:
    name: str
    state: GateState
    detail: str


class Need(StrEnum):
    TWO_PERSON = "two_person"
    BREAK_GLASS = "break_glass"
    BUDGET_OVERRIDE = "budget_override"
    HOTFIX = "hotfix"
    """A hotfix to production skips the error-budget gate: the requester says why."""


REASONED = frozenset({Need.BREAK_GLASS, Need.BUDGET_OVERRIDE, Need.HOTFIX})


@dataclass(frozen=True)
class DeployPlan:
    request: DeployRequest
    team: str
    image: str
    from_version: str
    from_revision: int
    confirm: bool
    gates: list[Gate]
    needs: frozenset[Need] = field(default_factory=frozenset)
    desired_state: str | None = None
    """GitOps delivery: the field's value in Git when planned (the commit expects it still)."""

    @property
    def blocked(self) -> list[Gate]:
        return [g for g in self.gates if g.state is GateState.BLOCK]

    @property
    def needs_reason(self) -> bool:
        return bool(self.needs & REASONED)

    @property
    def needs_second_person(self) -> bool:
        return bool(self.needs & {Need.TWO_PERSON, Need.BREAK_GLASS})

    @property
    def asks_first(self) -> bool:
        """True when the requester must confirm (and maybe give a reason) before it starts."""
        return self.confirm or self.needs_reason or self.needs_second_person


class StartKind(StrEnum):
    STARTED = "started"
    ALREADY = "already"
    AWAITING_APPROVAL = "awaiting_approval"


@dataclass(frozen=True)
class Started:
    kind: StartKind
    plan: DeployPlan
    approval: DeployApproval | None = None


@dataclass
class DeployService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    audit: AuditLog
    operations: OperationRunner
    kube: KubeGateway
    freezes: FreezeService
    rollouts: RolloutRunner
    approvals: SlackApprovalNotifier
    budget_gate: Callable[[], BudgetGate | None] = lambda: None
    """Asked at each plan: the SLO capability plugs its gate in after start-up."""
    gitops: GitOpsDelivery | None = None
    """Commits to the desired-state repository where the catalog says `delivery: gitops`."""

    def register_operations(self) -> None:
        self.operations.register(DEPLOY, self.execute, self.rollouts.failed)

    # --- the gates ---------------------------------------------------------------------------
    def _resolve(self, request: DeployRequest) -> tuple[Service, Environment, Workload]:
        found = workload(self.catalog, request.service, request.environment, usage=DEPLOY_USAGE)
        environment = self.catalog.environment(request.environment)
        if environment is None:  # the catalog check refuses a workload in no environment
            raise NotFound(f"There is no environment called `{escape(request.environment)}`.")
        return found.service, environment, found.workload

    def confirms(self, request: DeployRequest) -> bool:
        """The confirmation rule: the environment's policy asks for a dialog before any deploy
        (the handler opens it at once, while Slack's trigger is still valid)."""
        environment = self.catalog.environment(request.environment)
        return environment is not None and environment.policy.confirm

    def _version_policy(self, request: DeployRequest, environment: Environment) -> None:
        policy = environment.policy
        if policy.require_digest and not request.version.is_digest:
            raise UserInputError(
                f"{environment.name} takes image digests only: give `sha256:<64 hex>` instead "
                f"of `{escape(request.version.text)}`, so what was tested is what runs.",
                usage=DEPLOY_USAGE,
            )
        if not policy.allow_latest and request.version.text == "latest":
            raise UserInputError(
                f"`latest` is refused in {environment.name}: it is a mutable tag, so what runs "
                "could change without a deploy. Name the exact version (the catalog's "
                "`policy.allow_latest` allows it outside production).",
                usage=DEPLOY_USAGE,
            )

    async def plan(self, actor: Actor, request: DeployRequest) -> DeployPlan:
        """Evaluate every gate. Raises for what no one can get past (who, what, where);
        returns the other gates for the person to see."""
        service, environment, workload = self._resolve(request)
        decision = self.auth.authorize(actor, Action.DEPLOY, Target(service=service.name))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.DEPLOY))
        self._version_policy(request, environment)
        gates: list[Gate] = []
        needs: set[Need] = set()

        image = request.version.image(service.image)
        if self.catalog.registries and not any(
            service.image.startswith(r.rstrip("/") + "/") for r in self.catalog.registries
        ):
            gates.append(
                Gate("registry", GateState.BLOCK, f"{service.image} is not on an allowed registry")
            )

        facts = await self.kube.deployment_facts(
            workload.cluster, workload.namespace, workload.deployment
        )
        current = version_of(facts.images.get(workload.container, ""))
        desired_state: str | None = None
        by_pull_request = False
        owner = gitops_owner(facts)
        target = workload.gitops if self.gitops is not None else None
        if target is not None and self.gitops is not None:
            desired_state, _ = await self.gitops.current(target)
            current = self.gitops.version_in(target, desired_state)
            if desired_state == self.gitops.value_for(target, image, request.version.text):
                raise UserInputError(
                    f"{target.file} already holds `{escape(request.version.text)}` for "
                    f"{service.name} in {environment.name}."
                )
            by_pull_request = self.gitops.via_pull_request(environment.name, target)
            gates.append(
                Gate(
                    "GitOps",
                    GateState.INFO,
                    (
                        "a pull request (its merge is the deploy) changing "
                        if by_pull_request
                        else "a commit to "
                    )
                    + f"{target.field_label} on {target.branch}, applied by "
                    f"{target.controller.label}",
                )
            )
        elif facts.images.get(workload.container) == image:
            raise UserInputError(
                f"{service.name} already runs `{escape(request.version.text)}` in "
                f"{environment.name}."
            )
        elif workload.delivery == "gitops":
            raise ForgebotError(f"GitOps delivery is not set up for {service.name}")
        if target is None and owner and not service.bot_managed:
            gates.append(
                Gate(
                    "GitOps",
                    GateState.BLOCK,
                    f"{owner} manages this Deployment: change the version in Git, or mark the "
                    "service `bot_managed: true` in the catalog",
                )
            )
        elif target is None and owner:
            gates.append(Gate("GitOps", GateState.INFO, f"{owner} labels present; bot-managed"))
        if facts.autoscalers_unknown:
            gates.append(
                Gate("autoscaling", GateState.INFO, f"HPAs unknown: {facts.autoscalers_unknown}")
            )
        elif facts.autoscalers:
            gates.append(
                Gate(
                    "autoscaling",
                    GateState.INFO,
                    f"HPA {', '.join(facts.autoscalers)} sets the replica count; only the "
                    "image changes",
                )
            )

        running = await self.db.run(lambda s: repo.running(s, service.name, environment.name))
        if running is not None and await self.rollouts.forget_orphan(running):
            running = None  # its process died before starting it: nothing is rolling out
        if running is not None:
            gates.append(
                Gate(
                    "one rollout at a time",
                    GateState.BLOCK,
                    f"{running.version} by <@{running.actor}> is still rolling out",
                )
            )

        frozen = await self.freezes.frozen(environment.name, service.name)
        if frozen is not None:
            may = self.auth.authorize(actor, Action.BREAK_GLASS, Target(service=service.name))
            gates.append(
                Gate(
                    "freeze",
                    GateState.NEEDS_APPROVAL,
                    f"{_frozen_scope(frozen)} is frozen ({escape(frozen.reason)}): breaking glass "
                    "needs a reason and on-call or platform to approve"
                    + ("" if may.allowed else " (someone other than you)"),
                )
            )
            needs.add(Need.BREAK_GLASS)

        gates.append(await self._budget(actor, request, service, environment, needs))

        if (
            environment.policy.two_person_rule
            and by_pull_request
            and self.gitops is not None
            and self.gitops.approval(environment.name) == "review"
        ):
            gates.append(
                Gate(
                    "two-person rule",
                    GateState.INFO,
                    "an approving review of the pull request; forgebot merges it then",
                )
            )
        elif environment.policy.two_person_rule:
            gates.append(
                Gate(
                    "two-person rule",
                    GateState.NEEDS_APPROVAL,
                    f"a second person from {service.team}, on-call or platform approves",
                )
            )
            needs.add(Need.TWO_PERSON)
        if self.confirms(request):
            gates.append(Gate("confirmation", GateState.INFO, "confirm in the dialog"))
        gates.insert(
            0,
            Gate(
                "authorized",
                GateState.PASS,
                "as " + " and ".join(sorted(decision.roles_held & decision.roles_needed)),
            ),
        )
        return DeployPlan(
            request=request,
            team=service.team,
            image=image,
            from_version=current,
            from_revision=facts.revision,
            confirm=self.confirms(request),
            gates=gates,
            needs=frozenset(needs),
            desired_state=desired_state,
        )

    async def _budget(
        self,
        actor: Actor,
        request: DeployRequest,
        service: Service,
        environment: Environment,
        needs: set[Need],
    ) -> Gate:
        if environment.tier is not Tier.PROD:
            return Gate("error budget", GateState.PASS, "not gated outside production")
        if request.hotfix:
            needs.add(Need.HOTFIX)
            return Gate(
                "error budget",
                GateState.NEEDS_REASON,
                "hotfix: not gated; say why it cannot wait (kept in the audit log)",
            )
        gate = self.budget_gate()
        if gate is None:
            return Gate("error budget", GateState.INFO, "no SLO gate configured")
        verdict = await gate.check(service.name, environment.name)
        if verdict is None:
            return Gate("error budget", GateState.INFO, "no SLO data; not gated")
        if not verdict.exhausted:
            return Gate("error budget", GateState.PASS, verdict.summary)
        may = self.auth.authorize(actor, Action.GATE_OVERRIDE, Target(service=service.name))
        if may.allowed:
            needs.add(Need.BUDGET_OVERRIDE)
            return Gate(
                "error budget",
                GateState.NEEDS_REASON,
                f"exhausted: {verdict.summary}; you may override with a reason",
            )
        return Gate(
            "error budget",
            GateState.BLOCK,
            f"exhausted: {verdict.summary}. Mark it `hotfix`, or ask on-call or platform "
            "to override",
        )

    # --- starting ----------------------------------------------------------------------------
    async def submit(
        self, actor: Actor, request: DeployRequest, *, reason: str, channel: str, key: str
    ) -> Started:
        """The requester's go after a dialog: plan again (the world may have changed while it
        was open), then `start`."""
        plan = await self.plan(actor, request)
        return await self.start(actor, plan, reason=reason, channel=channel, key=key)

    async def start(
        self, actor: Actor, plan: DeployPlan, *, reason: str, channel: str, key: str
    ) -> Started:
        """Act on a fresh plan: start the rollout now, or ask the second person."""
        if plan.blocked:
            raise Conflict(
                "The deploy is blocked: " + "; ".join(f"{g.name}: {g.detail}" for g in plan.blocked)
            )
        reason = " ".join(reason.split())[:500]
        if plan.needs_reason and not reason:
            raise UserInputError(REASON_MISSING)
        await self._audit_exception(actor, plan, reason, channel)
        if plan.needs_second_person:
            return await self._ask_for_approval(actor, plan, reason, channel)
        created = await self._begin(actor.user_id, plan, channel, key)
        return Started(StartKind.STARTED if created else StartKind.ALREADY, plan)

    async def _audit_exception(
        self, actor: Actor, plan: DeployPlan, reason: str, channel: str
    ) -> None:
        for need, command in (
            (Need.BREAK_GLASS, Action.BREAK_GLASS.value),
            (Need.BUDGET_OVERRIDE, Action.GATE_OVERRIDE.value),
            (Need.HOTFIX, HOTFIX),
        ):
            if need in plan.needs:
                await self.audit.record(
                    AuditRecord(
                        actor_user_id=actor.user_id,
                        command=command,
                        outcome=AuditOutcome.OK,
                        arguments={
                            "service": plan.request.service,
                            "environment": plan.request.environment,
                            "version": plan.request.version.text,
                            "reason": reason,
                        },
                        channel_id=channel,
                    )
                )

    async def _ask_for_approval(
        self, actor: Actor, plan: DeployPlan, reason: str, channel: str
    ) -> Started:
        request = plan.request
        approval = DeployApproval(
            service=request.service,
            environment=request.environment,
            version=request.version.text,
            hotfix=request.hotfix,
            requester=actor.user_id,
            reason=reason,
            needs=",".join(sorted(plan.needs)),
            override_budget=Need.BUDGET_OVERRIDE in plan.needs,
            origin_channel=channel,
            created_at=self.clock.now(),
        )
        approval = await self.db.run(lambda s: approvals_repo.insert(s, approval))
        team = self.catalog.team(plan.team)
        card_channel = team.channel if team else channel
        card_ts = await self.approvals.approval_card(approval, plan, card_channel)
        approval_id = approval.id or 0
        await self.db.run(lambda s: approvals_repo.set_card(s, approval_id, card_ts[0], card_ts[1]))
        approval.card_channel, approval.card_ts = card_ts
        return Started(StartKind.AWAITING_APPROVAL, plan, approval)

    async def answerable(self, actor: Actor, approval_id: int) -> DeployApproval:
        """The pending request `actor` may answer; checked before a deny dialog opens too."""
        approval = await self.db.run(lambda s: approvals_repo.get(s, approval_id))
        if approval is None:
            raise NotFound("That deploy request no longer exists.")
        if approval.state != ApprovalState.PENDING:
            who = f" by <@{approval.decided_by}>" if approval.decided_by else ""
            raise Conflict(f"That deploy request was already {approval.state}{who}.")
        if actor.user_id == approval.requester:
            raise NotAuthorized(
                "You can’t approve your own deploy: the point is a second pair of eyes."
            )
        target = Target(service=approval.service)
        for need, action in (
            (Need.TWO_PERSON.value, Action.DEPLOY_APPROVE),
            (Need.BREAK_GLASS.value, Action.BREAK_GLASS),
        ):
            if need in approval.needs.split(","):
                decision = self.auth.authorize(actor, action, target)
                if not decision.allowed:
                    raise NotAuthorized(decision.explain(action))
        return approval

    async def decide(
        self, actor: Actor, approval_id: int, *, approve: bool, note: str = ""
    ) -> tuple[DeployApproval, Started | None]:
        """The second person's answer; the first press wins, the requester cannot approve."""
        approval = await self.answerable(actor, approval_id)
        state = ApprovalState.APPROVED if approve else ApprovalState.DENIED
        now = self.clock.now()
        decided = await self.db.run(
            lambda s: approvals_repo.decide(
                s, approval_id, to=state, by=actor.user_id, now=now, note=note
            )
        )
        if not decided:
            fresh = await self.db.run(lambda s: approvals_repo.get(s, approval_id))
            who = f" by <@{fresh.decided_by}>" if fresh and fresh.decided_by else ""
            raise Conflict(f"That deploy request was already decided{who}.")
        stored = await self.db.run(lambda s: approvals_repo.get(s, approval_id))
        approval = stored or approval
        try:
            started = await self._start_approved(approval) if approve else None
        finally:
            # After the start: the card and the requester's DM are paced, the deploy is not.
            await self.approvals.approval_decided(approval)
        return approval, started

    async def resume_decision(
        self, actor: Actor, approval_id: int, *, approve: bool, note: str = ""
    ) -> tuple[DeployApproval, Started | None]:
        """Recovery of a decision a restart cut short: decide it if nobody has, or finish
        `actor`'s own recorded approval (its deploy is keyed by the approval: started once)."""
        approval = await self.db.run(lambda s: approvals_repo.get(s, approval_id))
        mine = ApprovalState.APPROVED if approve else ApprovalState.DENIED
        if approval is None or approval.state != mine or approval.decided_by != actor.user_id:
            return await self.decide(actor, approval_id, approve=approve, note=note)
        try:
            started = await self._start_approved(approval) if approve else None
        finally:
            await self.approvals.approval_decided(approval)
        return approval, started

    async def _start_approved(self, approval: DeployApproval) -> Started:
        request = DeployRequest(
            approval.service,
            parse_version(approval.version),
            approval.environment,
            approval.hotfix,
        )
        # The gates again, as the requester: a freeze may have been set, a rollout started.
        plan = await self.plan(Actor(approval.requester), request)
        if plan.blocked:
            raise Conflict(
                "Approved, but the deploy is now blocked: "
                + "; ".join(f"{g.name}: {g.detail}" for g in plan.blocked)
            )
        created = await self._begin(
            approval.requester,
            plan,
            approval.origin_channel or approval.card_channel,
            f"deploy-approval:{approval.id}",
        )
        return Started(StartKind.STARTED if created else StartKind.ALREADY, plan)

    async def _begin(self, actor: str, plan: DeployPlan, channel: str, key: str) -> bool:
        request = plan.request
        record = DeploymentRecord(
            service=request.service,
            team=plan.team,
            environment=request.environment,
            kind=DeployKind.DEPLOY,
            version=request.version.text,
            previous_version=plan.from_version,
            actor=actor,
            started_at=self.clock.now(),
            hotfix=request.hotfix,
        )
        change = Change(
            DeployKind.DEPLOY,
            request.service,
            request.environment,
            plan.from_version,
            request.version.text,
            actor,
            hotfix=request.hotfix,
            back_to_revision=plan.from_revision or None,
            delivery="direct" if plan.desired_state is None else "gitops",
        )
        return await self.rollouts.begin(
            DEPLOY,
            record,
            change,
            channel,
            key,
            image=plan.image,
            desired_state=plan.desired_state,
        )

    # --- running -----------------------------------------------------------------------------
    async def execute(self, operation: Operation) -> dict[str, Any]:
        """The deploy operation's one handler: read its order, find the workload, act."""
        order = RolloutOrder.of(operation)
        change = order.change
        placed = workload(self.catalog, change.service, change.environment).workload
        if change.delivery != "gitops":

            async def act() -> object:
                return await self.kube.set_image(
                    placed.cluster,
                    placed.namespace,
                    placed.deployment,
                    placed.container,
                    order.image,
                )

            await self.rollouts.execute(order, placed, act)
            return {"image": order.image}
        target, gitops = placed.gitops, self.gitops
        if gitops is None or target is None:
            raise ForgebotError(f"{change.service} is no longer delivered through Git")
        commit = CommitRequest(
            subject=f"Deploy {change.service} {change.to_version} to {change.environment}",
            value=gitops.value_for(target, order.image, change.to_version),
            expect=order.desired_state,
            requester=change.actor,
            slack_channel=order.channel,
            slack_ts=order.ts,
            idempotency_key=operation.idempotency_key or f"operation-{operation.id}",
            body="Hotfix." if change.hotfix else "",
        )
        await self.rollouts.execute(
            order,
            placed,
            lambda: gitops.apply(order, placed, target, commit, self.rollouts.notify),
        )
        return {"image": order.image}


def gitops_owner(facts: DeploymentFacts) -> str | None:
    """Which GitOps controller owns the Deployment, if any (a change by hand would be undone
    at its next sync, or fight it)."""
    for where, key, owner in GITOPS_MARKERS:
        found = facts.annotations if where == "annotation" else facts.labels
        if key in found:
            return owner
    return None


def _frozen_scope(frozen: FreezeState) -> str:
    return f"{frozen.service} in {frozen.environment}" if frozen.service else frozen.environment
