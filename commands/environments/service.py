"""Self-service environments: the rules, the state machine and the orchestration.

request -> (auto | platform approval) -> provision -> active -> extend ... -> delete/expire.
Every state change is a guarded transition in the database, and provisioning and deletion run
as durable operations, so double clicks, Slack retries and restarts never act twice, and a
failure part-way removes what was made.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from commands.environments.parse import RequestForm
from core.audit import AuditLog, AuditRecord
from core.auth import Action, Actor, Authorizer, Target
from core.catalog import Catalog, Team, Template
from core.clock import Clock
from core.durations import format_duration
from core.errors import Conflict, ForgebotError, NotAuthorized, NotFound, UserInputError
from core.operations import OperationRunner
from core.pricing import PriceTag, price_tag
from core.times import shown
from storage import environments as repo
from storage import extensions, idempotency
from storage.db import Database
from storage.extensions import ExtensionRequest
from storage.models import AuditOutcome, EnvironmentRecord, EnvState, Operation

log = logging.getLogger(__name__)

PROVISION = "env.provision"
DELETE = "env.delete"
REQUEST = "env.request"
"""An acked request from the dialog, written before anything else (see `accept_request`)."""
EXTEND = "env.extend"
"""An acked `/env extend`, written before anything else (see `accept_extend`)."""
LABEL = "forgebot.io"


class NamespaceProvisioner(Protocol):
    """What this capability needs from Kubernetes; `integrations.kubernetes` provides it."""

    async def create_namespace(
        self, cluster: str, name: str, labels: dict[str, str], annotations: dict[str, str]
    ) -> Any: ...

    async def patch_namespace(
        self,
        cluster: str,
        name: str,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> Any: ...

    async def delete_namespace(self, cluster: str, name: str) -> Any: ...

    async def get_namespace(self, cluster: str, name: str) -> Any: ...

    async def apply_resource_quota(
        self, cluster: str, namespace: str, cpu: Decimal, memory_gib: Decimal, pods: int
    ) -> Any: ...

    async def apply_limit_range(self, cluster: str, namespace: str) -> Any: ...

    async def apply_role_binding(self, cluster: str, namespace: str, group: str) -> Any: ...

    async def apply_network_policy(self, cluster: str, namespace: str) -> Any: ...


class EnvironmentNotifier(Protocol):
    """How the capability tells people what happened (Slack, through its views)."""

    async def request_card(
        self, record: EnvironmentRecord, platform_channel: str
    ) -> tuple[str, str]: ...

    async def card_decided(self, record: EnvironmentRecord) -> None: ...

    async def to_owner(self, record: EnvironmentRecord, event: str, detail: str = "") -> None: ...

    async def to_person(self, user: str, text: str) -> None:
        """A direct message about a request that has no environment yet (`text` is escaped)."""
        ...

    async def progress(
        self, record: EnvironmentRecord, done: list[str], current: str | None, failed: str | None
    ) -> tuple[str, str]: ...

    async def expiry_reminder(self, record: EnvironmentRecord, left: timedelta) -> None: ...

    async def extension_request(
        self, record: EnvironmentRecord, until: datetime, requester: str, platform_channel: str
    ) -> None: ...


@dataclass(frozen=True)
class Extension:
    record: EnvironmentRecord
    until: datetime
    pending: bool
    approved: bool = True


PROVISION_STEPS = ("namespace", "resource quota", "limit range", "role binding", "network policy")


@dataclass
class EnvironmentService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    operations: OperationRunner
    kube: NamespaceProvisioner
    notify: EnvironmentNotifier
    audit: AuditLog

    def register_operations(self) -> None:
        self.operations.register(PROVISION, self.provision, self._operation_failed)
        self.operations.register(REQUEST, self.resume_request)
        self.operations.register(EXTEND, self.resume_extend)
        self.operations.register(DELETE, self.perform_delete, self._operation_failed)

    # --- requesting --------------------------------------------------------------------------
    def requester_team(self, actor: Actor) -> Team:
        decision = self.auth.authorize(actor, Action.ENV_REQUEST)
        team = self.auth.primary_team(actor.user_id)
        if not decision.allowed or team is None:
            raise NotAuthorized(
                "Only members of a team in the catalog can request environments; "
                "ask the platform team to add you to yours."
            )
        return team

    def price(self, template: Template, size: str, ttl: timedelta) -> PriceTag:
        quota = template.sizes[size]  # type: ignore[index]
        return price_tag(quota, self.catalog.pricing, ttl, template.offhours)

    async def name_available(self, name: str) -> bool:
        return not await self.db.run(lambda s: repo.name_is_live(s, name))

    async def request(self, actor: Actor, form: RequestForm) -> EnvironmentRecord:
        team = self.requester_team(actor)
        template = self.catalog.template(form.template)
        if template is None:
            raise UserInputError(f"There is no template called {form.template}.")
        now = self.clock.now()
        tag = self.price(template, form.size, form.ttl)
        record = EnvironmentRecord(
            name=form.name,
            template=template.name,
            size=form.size,
            team=team.name,
            owner_user_id=actor.user_id,
            purpose=form.purpose,
            cluster=template.cluster,
            ttl_seconds=int(form.ttl.total_seconds()),
            monthly_cost=str(tag.monthly.quantize(Decimal("0.01"))),
            currency=tag.currency,
            requested_at=now,
            updated_at=now,
        )
        try:
            record = await self.db.run(lambda s: repo.insert(s, record))
        except repo.NameTaken:
            raise UserInputError(
                f"An environment called {form.name} already exists; pick another name."
            ) from None

        if template.approval == "auto":
            await self._approve(_id(record), decided_by="auto-approved golden path", reason="")
        else:
            await self._ask_platform(record)
        return await self._get(_id(record))

    async def _ask_platform(self, record: EnvironmentRecord) -> None:
        platform = self.catalog.team(self.catalog.platform_team)
        assert platform is not None
        channel, ts = await self.notify.request_card(record, platform.channel)
        await self.db.run(
            lambda s: repo.set_fields(
                s, _id(record), self.clock.now(), card_channel=channel, card_ts=ts
            )
        )
        await self.notify.to_owner(record, "requested")

    async def accept_request(
        self,
        actor: Actor,
        form: RequestForm,
        *,
        key: str,
        ack: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """An acked request from the dialog, made durable first: its operation row is written
        before the environment's, so a crash after the ack loses nothing (recovery runs
        `resume_request`), and a Slack retry of the same submission acts once."""
        await self.operations.accept(
            REQUEST,
            {
                "actor": actor.user_id,
                "slack_team_id": actor.slack_team_id,
                "enterprise_id": actor.enterprise_id,
                "template": form.template,
                "name": form.name,
                "size": form.size,
                "ttl_seconds": int(form.ttl.total_seconds()),
                "purpose": form.purpose,
            },
            lambda: self.request(actor, form),
            idempotency_key=f"{REQUEST}:{key}",
            actor_user_id=actor.user_id,
            written=ack,  # acked once durable: no moment when the request exists nowhere
        )

    async def resume_request(self, operation: Operation) -> dict[str, Any]:
        """Recovery of an accepted request a crash interrupted: finish it where it stopped
        (nothing written yet, written but not approved, or not yet shown to the platform team);
        a refusal is told to the person by DM."""
        p = operation.payload
        actor = Actor(str(p["actor"]), str(p.get("slack_team_id", "")), str(p["enterprise_id"]))
        form = RequestForm(
            template=str(p["template"]),
            name=str(p["name"]),
            size=p["size"],
            ttl=timedelta(seconds=int(p["ttl_seconds"])),
            purpose=str(p["purpose"]),
        )
        try:
            record = await self.db.run(lambda s: repo.live_by_name(s, form.name))
            if record is None:
                record = await self.request(actor, form)
            elif record.owner_user_id != actor.user_id:
                raise UserInputError(
                    f"An environment called {form.name} already exists; pick another name."
                )
            elif record.state == EnvState.PENDING:
                template = self.catalog.template(record.template)
                if template is not None and template.approval == "auto":
                    await self._approve(
                        _id(record), decided_by="auto-approved golden path", reason=""
                    )
                elif not record.card_ts:
                    await self._ask_platform(record)
            elif record.state == EnvState.APPROVED:
                await self._submit_provisioning(_id(record), record.decided_by or "")
        except ForgebotError as exc:
            await self.notify.to_person(
                actor.user_id,
                ":arrows_counterclockwise: forgebot restarted while handling your request for "
                f"{form.name}: {exc}",
            )
            raise
        return {"name": form.name}

    # --- approval ----------------------------------------------------------------------------
    async def decide(
        self, actor: Actor, env_id: int, *, approve: bool, reason: str = ""
    ) -> EnvironmentRecord:
        # Checked again here, at execution time: roles may have changed since the card was posted.
        decision = self.auth.authorize(actor, Action.ENV_APPROVE)
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ENV_APPROVE))
        if approve:
            await self._approve(env_id, decided_by=actor.user_id, reason=reason)
        else:
            record = await self._decide(
                env_id, EnvState.DENIED, decided_by=actor.user_id, reason=reason
            )
            await self.notify.card_decided(record)
            await self.notify.to_owner(record, "denied", reason)
        return await self._get(env_id)

    async def _decide(
        self, env_id: int, to: EnvState, *, decided_by: str, reason: str
    ) -> EnvironmentRecord:
        """The guarded `pending -> approved|denied` step: the first decision wins."""
        now = self.clock.now()
        moved = await self.db.run(
            lambda s: repo.transition(
                s,
                env_id,
                expected=[EnvState.PENDING],
                to=to,
                now=now,
                decided_at=now,
                decided_by=decided_by,
                decision_reason=reason,
            )
        )
        if not moved:
            await self._already_decided(env_id)
        return await self._get(env_id)

    async def _approve(self, env_id: int, *, decided_by: str, reason: str) -> None:
        record = await self._decide(env_id, EnvState.APPROVED, decided_by=decided_by, reason=reason)
        if record.card_ts:
            await self.notify.card_decided(record)
        await self._submit_provisioning(env_id, decided_by)

    async def _submit_provisioning(self, env_id: int, decided_by: str) -> None:
        """Idempotent: an approval's provisioning is submitted once, whoever submits it."""
        await self.operations.submit(
            PROVISION,
            {"env_id": env_id},
            idempotency_key=f"{PROVISION}:{env_id}",
            actor_user_id=decided_by,
        )

    async def deniable(self, actor: Actor, env_id: int) -> EnvironmentRecord:
        """The pending request `actor` may deny (the Deny button opens a dialog for a reason);
        refused, or already decided, before the dialog opens. `decide()` checks again."""
        record = await self._get(env_id)
        decision = self.auth.authorize(actor, Action.ENV_APPROVE)
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ENV_APPROVE))
        if record.state != EnvState.PENDING:
            await self._already_decided(env_id)
        return record

    async def live_of(self, owner: str) -> list[EnvironmentRecord]:
        """The environments `owner` has that are not deleted (their App Home section)."""
        return list(await self.db.run(lambda s: repo.live(s, owner=owner)))

    async def _already_decided(self, env_id: int) -> None:
        record = await self._get(env_id)
        who = f" by <@{record.decided_by}>" if record.decided_by.startswith(("U", "W")) else ""
        if record.state == EnvState.CANCELLED:
            raise Conflict(f"The request for {record.name} was cancelled.")
        # The decision, not where the environment went since ("already active by @U").
        decision = "denied" if record.state == EnvState.DENIED else "approved"
        raise Conflict(f"The request for {record.name} was already {decision}{who}.")

    # --- provisioning (an operation) -----------------------------------------------------------
    async def provision(self, operation: Operation) -> dict[str, Any]:
        env_id = int(operation.payload["env_id"])
        now = self.clock.now()
        await self.db.run(
            lambda s: repo.transition(
                s, env_id, expected=[EnvState.APPROVED], to=EnvState.PROVISIONING, now=now
            )
        )
        record = await self._get(env_id)
        if record.state == EnvState.ACTIVE:
            # A re-run: the first run wrote `active` and died, maybe before telling the owner.
            await self._tell_owner_once(record, "ready")
            return {"name": record.name, "resumed": "active"}
        if record.state != EnvState.PROVISIONING:
            return {"skipped": record.state}
        await self.provision_namespace(record)
        finished = self.clock.now()
        await self.db.run(
            lambda s: repo.transition(
                s,
                env_id,
                expected=[EnvState.PROVISIONING],
                to=EnvState.ACTIVE,
                now=finished,
                expires_at=finished + timedelta(seconds=record.ttl_seconds),
            )
        )
        record = await self._get(env_id)
        await self._tell_owner_once(record, "ready")
        return {
            "name": record.name,
            "expires_at": record.expires_at.isoformat() if record.expires_at else "",
        }

    async def provision_namespace(
        self, record: EnvironmentRecord, *, offhours: str | None = None
    ) -> None:
        """Make a `provisioning` record's namespace with its labels, cost tags, quota, limit
        range, role binding and network policy, telling its progress; on a failure remove what
        was made, mark the record failed and raise. Safe to re-run after a crash."""
        template = self.catalog.template(record.template)
        team = self.catalog.team(record.team)
        if template is None or team is None:
            raise ForgebotError(f"{record.template} or {record.team} is no longer in the catalog")
        quota = template.sizes[record.size]  # type: ignore[index]
        expires = self.clock.now() + timedelta(seconds=record.ttl_seconds)
        labels = {
            f"{LABEL}/environment": record.name,
            f"{LABEL}/team": record.team,
            f"{LABEL}/owner": record.owner_user_id,
            f"{LABEL}/template": record.template,
            f"{LABEL}/managed-by": "forgebot",
        }
        annotations = {
            f"{LABEL}/expires-at": expires.isoformat(),
            f"{LABEL}/purpose": record.purpose[:250],
        }
        schedule = offhours or template.offhours
        if schedule:
            annotations[f"{LABEL}/offhours"] = schedule
        group = team.kubernetes_group or f"{team.name}-devs"
        steps = {
            "namespace": lambda: self.kube.create_namespace(
                record.cluster, record.name, labels, annotations
            ),
            "resource quota": lambda: self.kube.apply_resource_quota(
                record.cluster, record.name, quota.cpu, quota.memory_gib, quota.pods
            ),
            "limit range": lambda: self.kube.apply_limit_range(record.cluster, record.name),
            "role binding": lambda: self.kube.apply_role_binding(
                record.cluster, record.name, group
            ),
            "network policy": lambda: self.kube.apply_network_policy(record.cluster, record.name),
        }
        done: list[str] = []
        await self._progress(record, done, PROVISION_STEPS[0], None)
        for step in PROVISION_STEPS:
            try:
                await steps[step]()
            except Conflict:
                if step != "namespace":
                    raise
                # Re-run after a crash: the namespace is ours if it carries our labels;
                # anyone else's namespace of that name is never adopted (nor later deleted).
                problem = await self._not_ours(record)
                if problem:
                    await self._undo(record, [step], problem, cleanup=False)
                    raise ForgebotError(f"provisioning {record.name} failed: {problem}") from None
            except ForgebotError as exc:
                await self._undo(record, [*done, step], f"{step}: {exc}")
                raise ForgebotError(
                    f"provisioning {record.name} failed at the {step}: {exc}"
                ) from None
            done.append(step)
            await self._progress(record, done, _next(step), None)

    async def _progress(
        self, record: EnvironmentRecord, done: list[str], current: str | None, failed: str | None
    ) -> None:
        channel, ts = await self.notify.progress(record, done, current, failed)
        if not record.progress_ts and ts:
            record.progress_channel, record.progress_ts = channel, ts
            await self.db.run(
                lambda s: repo.set_fields(
                    s, _id(record), self.clock.now(), progress_channel=channel, progress_ts=ts
                )
            )

    async def _not_ours(self, record: EnvironmentRecord) -> str:
        """Why an existing namespace of the environment's name may not be adopted ('' if it may:
        an earlier attempt at this very environment made it)."""
        existing = await self.kube.get_namespace(record.cluster, record.name)
        if existing.phase == "Terminating":
            # A real API server removes a namespace's contents before the namespace itself.
            return (
                f"namespace {record.name} is still being deleted on {record.cluster}; "
                "request it again in a minute"
            )
        if existing.labels.get(f"{LABEL}/environment") != record.name or (
            existing.labels.get(f"{LABEL}/managed-by") != "forgebot"
        ):
            return (
                f"a namespace called {record.name} already exists on {record.cluster} and "
                "forgebot did not create it; request the environment under another name"
            )
        return ""

    async def _undo(
        self, record: EnvironmentRecord, attempted: list[str], reason: str, *, cleanup: bool = True
    ) -> None:
        """Remove whatever was made (deleting the namespace removes everything inside it),
        mark the environment failed and tell the owner. `cleanup=False` when nothing was made
        (the namespace belongs to someone else, or is still being deleted)."""
        try:
            if cleanup:
                await self.kube.delete_namespace(record.cluster, record.name)
        except NotFound:
            pass
        except ForgebotError as exc:
            log.error("could not clean up namespace %s after a failure: %s", record.name, exc)
            reason += f" (cleanup also failed: {exc}; the platform team has been told)"
        now = self.clock.now()
        await self.db.run(
            lambda s: repo.transition(
                s,
                _id(record),
                expected=[EnvState.PROVISIONING],
                to=EnvState.FAILED,
                now=now,
                failure=reason[:1000],
            )
        )
        failed_step = attempted[-1] if attempted else None
        await self._progress(record, attempted[:-1], None, failed_step)
        await self.notify.to_owner(await self._get(_id(record)), "failed", reason)

    async def _operation_failed(self, operation: Operation, reason: str) -> None:
        """A provisioning failed. If its handler did not settle the environment (a crash, its
        deadline, given up after restarts), what was made is removed and the environment marked
        failed here, so it never stays `provisioning` forever, and the owner is told."""
        env_id = int(operation.payload["env_id"])
        log.warning("operation %s for environment %s failed: %s", operation.kind, env_id, reason)
        record = await self._get(env_id)
        if operation.kind != PROVISION:
            return  # a failed deletion stays `deleting`: the namespace may still exist
        if record.state == EnvState.PROVISIONING:
            await self._undo(record, [], reason)  # removes what was made, tells the owner
        elif record.state == EnvState.APPROVED:
            now = self.clock.now()
            moved = await self.db.run(
                lambda s: repo.transition(
                    s,
                    env_id,
                    expected=[EnvState.APPROVED],
                    to=EnvState.FAILED,
                    now=now,
                    failure=reason[:1000],
                )
            )
            if moved:
                await self.notify.to_owner(await self._get(env_id), "failed", reason)

    # --- lifecycle ---------------------------------------------------------------------------
    async def find(self, name: str) -> EnvironmentRecord:
        record = await self.db.run(lambda s: repo.live_by_name(s, name))
        if record is None:
            raise NotFound(
                f"There is no environment called {name}. `/forge env list all` shows them all."
            )
        return record

    def _target(self, record: EnvironmentRecord) -> Target:
        return Target(team=record.team, owner_user_id=record.owner_user_id)

    async def list(self, actor: Actor, scope: str) -> Sequence[EnvironmentRecord]:
        if scope == "mine":
            return await self.db.run(lambda s: repo.live(s, owner=actor.user_id))
        if scope == "team":
            teams = [t.name for t in self.auth.teams_of(actor.user_id)]
            return await self.db.run(lambda s: repo.live(s, teams=teams))
        return await self.db.run(lambda s: repo.live(s))

    async def accept_extend(
        self, actor: Actor, name: str, by: timedelta, *, key: str
    ) -> Extension | None:
        """An acked `/env extend`, made durable first: its row carries the expiry it extends
        from, so a re-run after a crash sets the same new expiry (never extends twice) and
        tells the person. None for a retry of the same request (answered once)."""
        base = (await self.find(name)).expires_at
        accepted = await self.operations.accept(
            EXTEND,
            {
                "actor": actor.user_id,
                "slack_team_id": actor.slack_team_id,
                "enterprise_id": actor.enterprise_id,
                "name": name,
                "by_seconds": int(by.total_seconds()),
                "base": base.isoformat() if base else "",
            },
            lambda: self.extend(actor, name, by, base=base),
            idempotency_key=f"{EXTEND}:{key}",
            actor_user_id=actor.user_id,
        )
        return accepted.value

    async def resume_extend(self, operation: Operation) -> dict[str, Any]:
        """Recovery of an accepted extension a crash interrupted: do it, and tell the person."""
        p = operation.payload
        actor = Actor(str(p["actor"]), str(p.get("slack_team_id", "")), str(p["enterprise_id"]))
        name = str(p["name"])
        base = datetime.fromisoformat(str(p["base"])) if p.get("base") else None
        prefix = f":arrows_counterclockwise: forgebot restarted while extending {name}: "
        try:
            extension = await self.extend(
                actor, name, timedelta(seconds=int(p["by_seconds"])), base=base
            )
        except ForgebotError as exc:
            await self.notify.to_person(actor.user_id, prefix + str(exc))
            raise
        outcome = (
            f"the platform team has been asked to keep it until {shown(extension.until)}."
            if extension.pending
            else f"it now expires {shown(extension.until)}."
        )
        await self.notify.to_person(actor.user_id, prefix + outcome)
        return {"name": name, "until": extension.until.isoformat()}

    async def extend(
        self, actor: Actor, name: str, by: timedelta, *, base: datetime | None = None
    ) -> Extension:
        """Extend within the template's max TTL at once; beyond it, ask the platform team
        (whose own extensions need no approval). `base`: the expiry the request saw (a re-run
        extends from it, not from what the first run already set)."""
        record = await self.find(name)
        decision = self.auth.authorize(actor, Action.ENV_EXTEND, self._target(record))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ENV_EXTEND))
        if record.state != EnvState.ACTIVE or record.expires_at is None:
            raise Conflict(f"{name} is {record.state}; only active environments can be extended.")
        template = self.catalog.template(record.template)
        new_expiry = (base or record.expires_at) + by
        limit = self.clock.now() + (template.max_ttl if template else timedelta(0))
        if (
            new_expiry > limit
            and not self.auth.authorize(actor, Action.ENV_EXTEND_BEYOND_MAX).allowed
        ):
            # Stored before anyone is told: the platform team's queue shows it even if the
            # card never gets posted, and asking again finds the same request.
            _, created = await self._extension_request(record, new_expiry, actor.user_id)
            if created:
                platform = self.catalog.team(self.catalog.platform_team)
                assert platform is not None
                await self.notify.extension_request(
                    record, new_expiry, actor.user_id, platform.channel
                )
            return Extension(record, new_expiry, pending=True)
        return Extension(await self._set_expiry(record, new_expiry), new_expiry, pending=False)

    async def _extension_request(
        self, record: EnvironmentRecord, until: datetime, requester: str
    ) -> tuple[ExtensionRequest, bool]:
        row = ExtensionRequest(
            key=extensions.request_key(_id(record), until),
            environment_id=_id(record),
            environment=record.name,
            team=record.team,
            requester=requester,
            requested_until=until,
            created_at=self.clock.now(),
        )
        return await self.db.run(lambda s: extensions.insert_or_get(s, row))

    async def pending_extensions(self, requester: str | None = None) -> Sequence[ExtensionRequest]:
        """Extensions waiting for the platform team, oldest first (one requester's, if given)."""
        return await self.db.run(lambda s: extensions.pending(s, requester))

    async def decide_extension(
        self, actor: Actor, env_id: int, new_expiry: datetime, *, approve: bool
    ) -> Extension:
        decision = self.auth.authorize(actor, Action.ENV_EXTEND_BEYOND_MAX)
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ENV_EXTEND_BEYOND_MAX))
        now = self.clock.now()
        record = await self._get(env_id)
        # A card posted before requests were stored has no row yet: store it now.
        request, _ = await self._extension_request(record, new_expiry, record.owner_user_id)
        request_id = request.id or 0
        if not await self.db.run(
            lambda s: extensions.decide(s, request_id, approve=approve, by=actor.user_id, now=now)
        ):
            decided = await self.db.run(lambda s: extensions.get(s, request_id))
            by = f" by <@{decided.decided_by}>" if decided and decided.decided_by else ""
            raise Conflict(f"That extension was already decided{by}.")
        if approve:
            try:
                if record.state != EnvState.ACTIVE:
                    raise Conflict(
                        f"{record.name} is {record.state}; it can no longer be extended."
                    )
                record = await self._set_expiry(record, new_expiry)
            except BaseException:
                # Nothing half-done: the request waits again instead of reading approved.
                await self.db.run(lambda s: extensions.undecide(s, request_id))
                raise
        await self.notify.to_owner(
            record,
            "extended" if approve else "extension_denied",
            f"until {shown(new_expiry)}",
        )
        return Extension(record, new_expiry, pending=False, approved=approve)

    async def renew(self, record: EnvironmentRecord, until: datetime) -> EnvironmentRecord:
        """Move the expiry later on the bot's own decision (a push to a pull request)."""
        if record.expires_at is not None and record.expires_at >= until:
            return record
        return await self._set_expiry(record, until)

    async def _set_expiry(
        self, record: EnvironmentRecord, new_expiry: datetime
    ) -> EnvironmentRecord:
        await self.kube.patch_namespace(
            record.cluster, record.name, annotations={f"{LABEL}/expires-at": new_expiry.isoformat()}
        )
        now = self.clock.now()
        await self.db.run(
            lambda s: repo.set_fields(s, _id(record), now, expires_at=new_expiry, reminders_sent=[])
        )
        return await self._get(_id(record))

    async def deletable(self, actor: Actor, name: str) -> EnvironmentRecord:
        """The environment `actor` may delete; checked before asking "Delete …?" as well as
        after, so nobody is asked to confirm what they will then be refused."""
        record = await self.find(name)
        decision = self.auth.authorize(actor, Action.ENV_DELETE, self._target(record))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.ENV_DELETE))
        return record

    async def delete(
        self, actor: Actor, name: str, *, reason: str = "deleted on request"
    ) -> EnvironmentRecord:
        record = await self.deletable(actor, name)
        return await self._start_delete(record, actor.user_id, reason)

    async def remove(self, record: EnvironmentRecord, by: str, reason: str) -> EnvironmentRecord:
        """Delete on the bot's own decision (a closed pull request): no person to authorize."""
        return await self._start_delete(record, by, reason)

    async def _start_delete(
        self, record: EnvironmentRecord, by: str, reason: str
    ) -> EnvironmentRecord:
        now = self.clock.now()
        moved = await self.db.run(
            lambda s: repo.transition(
                s,
                _id(record),
                expected=[EnvState.ACTIVE, EnvState.FAILED],
                to=EnvState.DELETING,
                now=now,
                decision_reason=reason,
            )
        )
        if not moved:
            current = await self._get(_id(record))
            if current.state == EnvState.DELETING:
                return current
            raise Conflict(f"{record.name} is {current.state}; it cannot be deleted now.")
        await self.operations.submit(
            DELETE,
            {"env_id": _id(record), "reason": reason},
            idempotency_key=f"{DELETE}:{_id(record)}",
            actor_user_id=by,
        )
        return await self._get(_id(record))

    async def perform_delete(self, operation: Operation) -> dict[str, Any]:
        record = await self._get(int(operation.payload["env_id"]))
        reason = str(operation.payload.get("reason", ""))
        if record.state == EnvState.DELETED:
            # A re-run: the first run wrote `deleted` and died, maybe before telling the owner.
            await self._tell_owner_once(record, "deleted", reason)
            return {"deleted": record.name, "resumed": "deleted"}
        if record.state != EnvState.DELETING:
            return {"skipped": record.state}
        note = ""
        try:
            await self.kube.delete_namespace(record.cluster, record.name)
        except NotFound:
            note = "the namespace was already gone"
        now = self.clock.now()
        await self.db.run(
            lambda s: repo.transition(
                s, _id(record), expected=[EnvState.DELETING], to=EnvState.DELETED, now=now
            )
        )
        await self._tell_owner_once(
            await self._get(_id(record)), "deleted", reason + (f" ({note})" if note else "")
        )
        return {"deleted": record.name, "note": note}

    async def _tell_owner_once(
        self, record: EnvironmentRecord, event: str, detail: str = ""
    ) -> None:
        """Tell the owner an operation's outcome unless an earlier run of it already did (the
        key is written once the message is sent: a crash in between tells twice, never zero
        times)."""
        key = f"env.told:{event}:{_id(record)}"
        if await self.db.run(lambda s: idempotency.held(s, key)):
            return
        await self.notify.to_owner(record, event, detail)
        now = self.clock.now()
        await self.db.run(lambda s: idempotency.claim(s, key, now))

    # --- TTL (a scheduled job) -----------------------------------------------------------------
    async def sweep_expiry(self, slot: datetime) -> None:
        """Expire or remind every environment that is due, all at once: their database
        writes, audit entries (one batched INSERT) and messages overlap instead of queueing
        one environment behind another, and one environment's failure does not hold up the
        rest. The first failure is raised after all were tried, so the run counts as failed."""
        now = self.clock.now()
        # An approval whose provisioning was never submitted (the process died in between):
        # submit it now; the idempotency key makes this a no-op when it was.
        for record in await self.db.run(
            lambda s: repo.approved_before(s, now - timedelta(minutes=1))
        ):
            await self.operations.submit(
                PROVISION,
                {"env_id": _id(record)},
                idempotency_key=f"{PROVISION}:{_id(record)}",
                actor_user_id=record.decided_by,
            )
        lead = max(self.catalog.schedules.ttl_reminders, default=timedelta(0))
        due = await self.db.run(lambda s: repo.active_expiring_before(s, now + lead))
        outcomes = await asyncio.gather(
            *(self._expire_or_remind(record, now) for record in due), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        for record, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("TTL sweep: %s failed: %s", record.name, outcome)
        if failures:
            raise failures[0]

    async def _expire_or_remind(self, record: EnvironmentRecord, now: datetime) -> None:
        assert record.expires_at is not None and _id(record) is not None
        left = record.expires_at - now
        if left <= timedelta(0):
            await self._start_delete(record, "forgebot", "its time to live ran out")
            await self._audit_job(
                record, "env.expire", {"expired_at": record.expires_at.isoformat()}
            )
            return
        due = [r for r in sorted(self.catalog.schedules.ttl_reminders) if left <= r]
        label = format_duration(due[0]) if due else ""
        if label and label not in record.reminders_sent:
            await self.notify.expiry_reminder(record, left)
            await self._audit_job(record, "env.expiry_reminder", {"left": format_duration(left)})
            sent = [*record.reminders_sent, label]
            await self.db.run(
                functools.partial(repo.set_fields, env_id=_id(record), now=now, reminders_sent=sent)
            )

    async def _audit_job(
        self, record: EnvironmentRecord, command: str, arguments: dict[str, Any]
    ) -> None:
        """What the scheduler does is audited like what people do, under the bot's name."""
        await self.audit.record(
            AuditRecord(
                actor_user_id="forgebot",
                command=command,
                outcome=AuditOutcome.OK,
                arguments={"environment": record.name, **arguments},
                actor_team=record.team,
            )
        )

    async def _get(self, env_id: int) -> EnvironmentRecord:
        record = await self.db.run(lambda s: repo.get(s, env_id))
        if record is None:
            raise NotFound(f"environment #{env_id} does not exist")
        return record


def _id(record: EnvironmentRecord) -> int:
    if record.id is None:
        raise ValueError("environment record was never stored")
    return record.id


def _next(step: str) -> str | None:
    index = PROVISION_STEPS.index(step)
    return PROVISION_STEPS[index + 1] if index + 1 < len(PROVISION_STEPS) else None
