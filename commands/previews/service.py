"""Preview environments per pull request: the rules and the orchestration.

A webhook is verified, claimed once by its delivery id (in the database), and recorded on the
pull request's row (`storage.previews`), ordered by the code host's own time, never by arrival.
Each accepted change submits a durable `preview.sync` operation; a sync brings the world to
what the row says *now*, under one lock per pull request, so ten pushes in a minute make one
or two passes that end at the last SHA, with one Slack message and one comment edited in place.

Bringing a preview up reuses the environments capability (namespace with labels and cost tags,
quota, limit range, role binding, network policy, its TTL sweep, off-hours and cost), then
deploys the pull request's image through the rollout runner every deploy uses, behind a Service
and an Ingress for the temporary host. Taking it down deletes the environment the same way an
expired one is deleted; the environment capability tells this one when it is gone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from commands.deploy.runner import Change, RolloutRunner
from commands.environments.service import EnvironmentService
from commands.offhours.service import OffhoursService
from commands.previews import views
from commands.previews.naming import host_for, image_for, namespace_for
from commands.previews.notifications import PreviewAnnouncer
from core.audit import AuditLog, AuditRecord
from core.auth import Actor, Authorizer
from core.catalog import Catalog, PreviewSpec, Template, Workload
from core.clock import Clock
from core.errors import Conflict, ForgebotError, NotFound, UserInputError
from core.operations import OperationRunner
from core.pricing import price_tag
from integrations.codehost.host import CodeHost, DeploymentState
from integrations.codehost.rest import CodeHostError
from integrations.codehost.webhooks import Change as Direction
from integrations.codehost.webhooks import PullRequestEvent
from integrations.kubernetes import manifests
from integrations.kubernetes.rollout import RolloutStatus
from storage import deployments as deploy_repo
from storage import environments as env_repo
from storage import idempotency
from storage import operations as operations_repo
from storage import previews as repo
from storage.db import Database
from storage.models import (
    AuditOutcome,
    DeployKind,
    DeploymentRecord,
    DeployOutcome,
    EnvironmentRecord,
    EnvState,
    Operation,
)
from storage.previews import PreviewPhase, PullRequestPreview

log = logging.getLogger(__name__)

SYNC = "preview.sync"
BOT = "forgebot"
DELETING_WAIT = timedelta(minutes=2)


class PreviewKube(Protocol):
    async def apply_deployment(
        self, cluster: str, namespace: str, body: dict[str, Any]
    ) -> None: ...

    async def apply_preview_routing(
        self,
        cluster: str,
        namespace: str,
        service: dict[str, Any],
        ingress: dict[str, Any],
        allow: dict[str, Any],
    ) -> None: ...


@dataclass(frozen=True)
class Receipt:
    """What a webhook did, for its 2xx answer and the log."""

    outcome: str
    """accepted, unchanged (older or nothing new), duplicate (a replayed delivery), ignored."""
    detail: str = ""
    preview_id: int | None = None


@dataclass
class PreviewService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    audit: AuditLog
    operations: OperationRunner
    environments: EnvironmentService
    kube: PreviewKube
    rollouts: RolloutRunner
    announcer: PreviewAnnouncer
    hosts: Mapping[str, CodeHost]
    offhours: OffhoursService | None = None
    deleting_poll: float = 0.2
    max_syncs: int = 16
    """Syncs running at once. A flood of pull requests waits here, cheaply, rather than
    crowding the database and the event loop that answer the next webhooks (Kubernetes calls
    are further bounded by the gateway's own limit)."""
    _locks: dict[int, asyncio.Lock] = field(default_factory=dict)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_syncs)

    def register_operations(self) -> None:
        self.operations.register(SYNC, self.run_sync, self._sync_failed)

    # --- webhooks ----------------------------------------------------------------------------
    async def receive(self, event: PullRequestEvent, delivery: str) -> Receipt:
        """Record one verified delivery; acts once per delivery id, whatever the retries."""
        spec = self.catalog.preview_for(event.provider, event.repository)
        if spec is None:
            log.info(
                "ignoring a %s pull request webhook for %s: no preview is configured for it",
                event.provider,
                event.repository,
            )
            return Receipt("ignored", "no preview is configured for this repository")
        service = self.catalog.service(spec.service)
        assert service is not None  # the catalog checks its references
        namespace = namespace_for(spec.service, event.number)
        host = host_for(spec, service.team, event.number, event.branch, event.head_sha)
        observed = repo.Observed(
            provider=event.provider,
            repository=spec.repository,
            number=event.number,
            open=event.change is Direction.UP,
            head_sha=event.head_sha,
            at=event.at,
            title=event.title,
            author=event.author,
            branch=event.branch,
            url=event.url,
            merged=event.merged,
            merge_commit_sha=event.merge_commit_sha,
            merged_at=event.merged_at,
        )
        now = self.clock.now()
        key = f"webhook:{event.provider}:{delivery}"

        def record(session: Any) -> tuple[repo.Accepted, Operation | None] | None:
            """One transaction per delivery: claim its id, record the change, and write the
            sync operation's row, so a flood of webhooks costs one commit each."""
            if not idempotency.claim(session, key, now):
                return None
            accepted = repo.observe(
                session,
                observed,
                service=service.name,
                team=service.team,
                namespace=namespace,
                host=host,
                now=now,
            )
            if not accepted.changed:
                return accepted, None
            row = self._sync_row(accepted.preview_id, accepted.generation, now)
            operation, created = operations_repo.insert_or_get(session, row)
            return accepted, operation if created else None

        recorded = await self.db.run(record)
        if recorded is None:
            return Receipt("duplicate", "this delivery was already received")
        accepted, operation = recorded
        if not accepted.changed:
            return Receipt("unchanged", "older than what is known", accepted.preview_id)
        if operation is not None:
            self.operations.start(operation.id)
        return Receipt("accepted", "", accepted.preview_id)

    @staticmethod
    def _sync_row(preview_id: int, generation: int, now: datetime) -> Operation:
        return Operation(
            id=uuid.uuid4().hex,
            kind=SYNC,
            idempotency_key=f"{SYNC}:{preview_id}:{generation}",
            payload={"preview_id": preview_id, "generation": generation},
            actor_user_id=BOT,
            created_at=now,
            updated_at=now,
        )

    async def submit(self, preview_id: int, generation: int) -> None:
        await self.operations.submit(
            SYNC,
            {"preview_id": preview_id, "generation": generation},
            idempotency_key=f"{SYNC}:{preview_id}:{generation}",
            actor_user_id=BOT,
        )

    async def resync_job(self, slot: datetime) -> None:
        await self.resubmit_unsynced()

    async def resubmit_unsynced(self) -> int:
        """A scheduled pass: a change recorded but never synced (a crash between the two)
        gets its operation; keys make this a no-op for changes already submitted."""
        rows = await self.db.run(repo.unsynced)
        for row in rows:
            assert row.id is not None
            await self.submit(row.id, row.generation)
        return len(rows)

    # --- syncing (an operation) ----------------------------------------------------------------
    async def run_sync(self, operation: Operation) -> dict[str, Any]:
        preview_id = int(operation.payload["preview_id"])
        lock = self._locks.setdefault(preview_id, asyncio.Lock())
        async with lock, self._slots:
            passes = 0
            while True:
                # Whatever generation this operation was submitted for, a pass syncs to the
                # latest; operations queued behind it find nothing left to do.
                preview = await self._get(preview_id)
                if preview.synced_generation >= preview.generation:
                    return {"passes": passes, "generation": preview.synced_generation}
                target = preview.generation
                passes += 1
                if preview.open:
                    await self._bring_up(preview)
                else:
                    await self._tear_down(preview)
                await self.db.run(
                    functools.partial(
                        repo.mark_synced,
                        preview_id=preview_id,
                        generation=target,
                        now=self.clock.now(),
                    )
                )

    async def _sync_failed(self, operation: Operation, reason: str) -> None:
        preview_id = int(operation.payload.get("preview_id", 0))
        log.warning("preview sync of #%s failed: %s", preview_id, reason)
        try:
            preview = await self._get(preview_id)
        except NotFound:
            return
        if preview.phase == PreviewPhase.BUILDING:
            await self._set(preview, phase=PreviewPhase.FAILED, detail=reason[:500])
            await self._announce(await self._get(preview_id))

    # --- bringing a preview up -------------------------------------------------------------------
    async def _bring_up(self, preview: PullRequestPreview) -> None:
        spec, template = self._spec(preview)
        previous = preview.deployed_sha if preview.phase == PreviewPhase.READY else ""
        await self._set(preview, phase=PreviewPhase.BUILDING, detail="")
        preview = await self._get(_id(preview))
        await self._announce(preview, previous_sha=previous)
        await self._mark_deployment(preview)
        try:
            environment = await self._environment(preview, spec, template)
            preview = await self._get(_id(preview))
            if not preview.open:
                return  # closed meanwhile: the next pass takes it down
            status = await self._deploy(preview, spec, environment, previous)
        except ForgebotError as exc:
            await self._failed(preview, str(exc), previous)
            return
        preview = await self._get(_id(preview))
        if status.done:
            now = self.clock.now()
            await self._set(
                preview, phase=PreviewPhase.READY, detail="", ready_at=preview.ready_at or now
            )
            preview = await self._get(_id(preview))
            await self._announce(preview, previous_sha=previous)
            await self._deployment_status(preview, DeploymentState.SUCCESS, "the preview is ready")
            await self._audit(preview, "preview.ready", {"sha": preview.deployed_sha})
        else:
            await self._failed(preview, status.reason or "the rollout did not finish", previous)

    async def _failed(self, preview: PullRequestPreview, reason: str, previous: str) -> None:
        await self._set(preview, phase=PreviewPhase.FAILED, detail=reason[:500])
        preview = await self._get(_id(preview))
        await self._announce(preview, previous_sha=previous)
        await self._deployment_status(preview, DeploymentState.FAILURE, reason)
        await self._audit(preview, "preview.failed", {"reason": reason[:300]}, AuditOutcome.ERROR)

    async def _environment(
        self, preview: PullRequestPreview, spec: PreviewSpec, template: Template
    ) -> EnvironmentRecord:
        """The preview's environment, made or renewed: each push extends its TTL."""
        ttl = spec.ttl or template.default_ttl
        record = await self._live_environment(preview.namespace)
        if record is not None and record.state == EnvState.ACTIVE:
            return await self.environments.renew(record, self.clock.now() + ttl)
        if record is not None and record.state != EnvState.PROVISIONING:
            raise Conflict(
                f"the namespace name {preview.namespace} belongs to an environment that is "
                f"{record.state}"
            )
        if record is None:
            record = await self._new_environment(preview, spec, template, ttl)
        await self.environments.provision_namespace(record, offhours=spec.offhours)
        finished = self.clock.now()
        env_id = record.id or 0
        await self.db.run(
            lambda s: env_repo.transition(
                s,
                env_id,
                expected=[EnvState.PROVISIONING],
                to=EnvState.ACTIVE,
                now=finished,
                expires_at=finished + ttl,
            )
        )
        active = await self.db.run(lambda s: env_repo.get(s, env_id))
        assert active is not None
        return active

    async def _live_environment(self, name: str) -> EnvironmentRecord | None:
        """The live environment of that name; one being deleted is waited for (a reopen right
        after a close), so the new one never meets the old one's namespace."""
        for _ in range(int(DELETING_WAIT.total_seconds() / self.deleting_poll)):
            record = await self.db.run(lambda s: env_repo.live_by_name(s, name))
            if record is None or record.state != EnvState.DELETING:
                return record
            await asyncio.sleep(self.deleting_poll)
        raise Conflict(f"{name} is still being deleted; the next push builds it again")

    async def _new_environment(
        self, preview: PullRequestPreview, spec: PreviewSpec, template: Template, ttl: timedelta
    ) -> EnvironmentRecord:
        tag = _price(
            template.sizes[spec.size],  # type: ignore[index]
            self.catalog.pricing,
            ttl,
            spec.offhours or template.offhours,
        )
        now = self.clock.now()
        record = EnvironmentRecord(
            name=preview.namespace,
            template=template.name,
            size=spec.size,
            team=preview.team,
            owner_user_id="",
            purpose=f"preview of {preview.repository}#{preview.number}",
            cluster=template.cluster,
            state=EnvState.PROVISIONING,
            ttl_seconds=int(ttl.total_seconds()),
            monthly_cost=str(tag.monthly.quantize(Decimal("0.01"))),
            currency=tag.currency,
            requested_at=now,
            decided_at=now,
            decided_by=BOT,
            decision_reason="pull request preview",
            updated_at=now,
        )
        try:
            return await self.db.run(lambda s: env_repo.insert(s, record))
        except env_repo.NameTaken:
            raise Conflict(f"another environment is already called {preview.namespace}") from None

    async def _deploy(
        self,
        preview: PullRequestPreview,
        spec: PreviewSpec,
        environment: EnvironmentRecord,
        previous: str,
    ) -> RolloutStatus:
        service = self.catalog.service(spec.service)
        assert service is not None
        sha = preview.head_sha
        image = image_for(service.image, spec, preview.number, preview.branch, sha)
        cluster, namespace = environment.cluster, preview.namespace
        await self.kube.apply_preview_routing(
            cluster,
            namespace,
            manifests.preview_service(namespace, service.name, spec.port),
            manifests.preview_ingress(namespace, service.name, preview.host, spec.ingress_class),
            manifests.allow_from_namespace(namespace, spec.ingress_namespace),
        )
        body = manifests.preview_deployment(
            namespace,
            service.name,
            spec.container,
            image,
            spec.port,
            spec.replicas,
            {"forgebot.io/pull-request": f"{preview.repository}#{preview.number}"},
        )
        record_id = await self._start_record(preview, service.team, sha, previous)
        change = Change(
            DeployKind.PREVIEW, service.name, namespace, views.short(previous), sha, BOT
        )
        workload = Workload(
            cluster=cluster, namespace=namespace, deployment=service.name, container=spec.container
        )

        async def act() -> None:
            await self.kube.apply_deployment(cluster, namespace, body)

        status = await self.rollouts.run(record_id, change, "", "", act, workload=workload)
        if status.done:
            await self._set(preview, deployed_sha=sha)
        return status

    async def _start_record(
        self, preview: PullRequestPreview, team: str, sha: str, previous: str
    ) -> int:
        """The deploy record of this rollout (kind `preview`: outside the DORA figures). We
        hold the pull request's lock, so one still in progress was left by a crash."""
        record = DeploymentRecord(
            service=preview.service,
            team=team,
            environment=preview.namespace,
            kind=DeployKind.PREVIEW,
            version=sha,
            previous_version=previous,
            actor=BOT,
            source="preview",
            started_at=self.clock.now(),
            commit_sha=sha,
        )
        for _ in range(2):
            try:
                started = await self.db.run(lambda s: deploy_repo.start(s, record.model_copy()))
                return started.id or 0
            except deploy_repo.RolloutInProgress as exc:
                await self.db.run(
                    functools.partial(
                        deploy_repo.finish,
                        deployment_id=exc.existing.id if exc.existing else 0,
                        outcome=DeployOutcome.FAILED,
                        now=self.clock.now(),
                        failure_reason="interrupted",
                    )
                )
        raise Conflict(f"a rollout in {preview.namespace} is still recorded as running")

    # --- taking a preview down -------------------------------------------------------------------
    async def _tear_down(self, preview: PullRequestPreview) -> None:
        reason = "merged" if preview.merged else "pull request closed"
        record = await self.db.run(lambda s: env_repo.live_by_name(s, preview.namespace))
        if record is not None and record.state == EnvState.PROVISIONING:
            # Left by a crash mid-provisioning (a live sync holds this pull request's lock).
            now = self.clock.now()
            env_id = record.id or 0
            await self.db.run(
                lambda s: env_repo.transition(
                    s,
                    env_id,
                    expected=[EnvState.PROVISIONING],
                    to=EnvState.FAILED,
                    now=now,
                    failure=reason,
                )
            )
            record = await self.db.run(lambda s: env_repo.get(s, env_id))
        if record is not None and record.state in (EnvState.ACTIVE, EnvState.FAILED):
            await self.environments.remove(record, BOT, reason)
        elif record is None and preview.phase != PreviewPhase.REMOVED:
            # FAILED environments are no longer live by name: remove their namespace too.
            gone = await self.db.run(lambda s: env_repo.latest_by_name(s, preview.namespace))
            if gone is not None and gone.state == EnvState.FAILED:
                await self.environments.remove(gone, BOT, reason)
        if preview.phase != PreviewPhase.REMOVED:
            await self._set(preview, phase=PreviewPhase.REMOVED, detail=reason)
            preview = await self._get(_id(preview))
            await self._announce(preview)
            await self._deployment_status(preview, DeploymentState.INACTIVE, reason)
            await self._audit(preview, "preview.remove", {"reason": reason})
        if preview.merged and preview.first_commit_at is None:
            await self._record_first_commit(preview)

    async def environment_deleted(self, record: EnvironmentRecord, detail: str) -> bool:
        """Told by the environments capability: an environment is gone (expired, deleted by
        someone, or by `_tear_down`). True if it was a preview's."""
        preview = await self.db.run(lambda s: repo.by_namespace(s, record.name))
        if preview is None:
            return False
        async with self._locks.setdefault(_id(preview), asyncio.Lock()):
            if await self.db.run(lambda s: env_repo.live_by_name(s, record.name)) is not None:
                return True  # already built again (a push came after the delete)
            preview = await self._get(_id(preview))
            if preview.phase != PreviewPhase.REMOVED:
                await self._set(preview, phase=PreviewPhase.REMOVED, detail=detail[:300])
                preview = await self._get(_id(preview))
                await self._announce(preview)
                await self._deployment_status(preview, DeploymentState.INACTIVE, detail)
        return True

    async def _record_first_commit(self, preview: PullRequestPreview) -> None:
        host = self.hosts.get(preview.provider)
        if host is None:
            return
        try:
            first = await host.first_commit_time(preview.repository, preview.number)
        except ForgebotError as exc:
            log.warning(
                "no first commit time for %s#%s: %s", preview.repository, preview.number, exc
            )
            return
        if first is not None:
            await self._set(preview, first_commit_at=first)

    # --- buttons -----------------------------------------------------------------------------------
    async def extend(self, actor: Actor, namespace: str, by: timedelta) -> str:
        extension = await self.environments.extend(actor, namespace, by)  # authorizes
        await self._refresh(namespace)
        if extension.pending:
            return (
                f":hourglass: Keeping {namespace} that long is beyond what its template allows; "
                "the platform team has been asked to approve it."
            )
        until = extension.until
        return f":hourglass: {namespace} now expires {until:%a %d %b %H:%M} UTC."

    async def delete_now(self, actor: Actor, namespace: str) -> str:
        await self.environments.delete(
            actor, namespace, reason=f"deleted by <@{actor.user_id}>"
        )  # authorizes
        return f":wastebasket: Deleting {namespace}; the next push builds it again."

    async def keep_awake(self, actor: Actor, namespace: str) -> str:
        if self.offhours is None:
            raise UserInputError("Off-hours shutdowns are not running here.")
        _, resolved, (setting, _) = await self.offhours.status(namespace)
        shutdown = self.offhours.next_shutdown(
            resolved, setting, self.clock.now(), timedelta(hours=24)
        )
        if shutdown is None:
            return f":sunny: {namespace} does not go to sleep in the next 24 hours."
        return ":sunny: " + await self.offhours.choose(
            actor, namespace, shutdown.isoformat(), "skip"
        )  # authorizes

    async def _refresh(self, namespace: str) -> None:
        preview = await self.db.run(lambda s: repo.by_namespace(s, namespace))
        if preview is not None:
            await self._announce(preview)

    # --- listing -----------------------------------------------------------------------------------
    async def list(
        self, teams: Sequence[str] | None
    ) -> list[tuple[PullRequestPreview, views.Facts]]:
        previews = await self.db.run(lambda s: repo.live(s, teams))
        return [(p, await self.facts(p)) for p in previews]

    def check_team(self, team: str) -> None:
        if self.catalog.team(team) is None:
            known = ", ".join(t.name for t in self.catalog.teams)
            raise UserInputError(f"There is no team called {team}; the catalog has {known}.")

    # --- telling people ----------------------------------------------------------------------------
    async def facts(
        self,
        preview: PullRequestPreview,
        *,
        previous_sha: str = "",
        rollout: RolloutStatus | None = None,
    ) -> views.Facts:
        spec = self.catalog.preview_for(preview.provider, preview.repository)
        template = self.catalog.template(spec.template) if spec else None
        price, offhours = None, None
        if spec is not None and template is not None:
            ttl = spec.ttl or template.default_ttl
            offhours = spec.offhours or template.offhours
            price = _price(template.sizes[spec.size], self.catalog.pricing, ttl, offhours)  # type: ignore[index]
        record = await self.db.run(lambda s: env_repo.live_by_name(s, preview.namespace))
        return views.Facts(
            price=price,
            offhours=offhours,
            expires_at=record.expires_at if record is not None else None,
            now=self.clock.now(),
            rollout=rollout,
            previous_sha=previous_sha,
        )

    async def _announce(
        self,
        preview: PullRequestPreview,
        *,
        previous_sha: str = "",
        rollout: RolloutStatus | None = None,
    ) -> None:
        facts = await self.facts(preview, previous_sha=previous_sha, rollout=rollout)
        team = self.catalog.team(preview.team)
        if team is not None:
            text, blocks = views.message(preview, facts)
            await self.announcer.show(preview, team.channel, text, blocks)
        if rollout is None:
            await self._comment(preview, views.comment(preview, facts))

    async def progress(self, namespace: str, status: RolloutStatus | None) -> None:
        """The rollout runner's progress, shown in the preview's one message."""
        preview = await self.db.run(lambda s: repo.by_namespace(s, namespace))
        if preview is not None and status is not None:
            await self._announce(preview, rollout=status)

    async def _comment(self, preview: PullRequestPreview, body: str) -> None:
        host = self.hosts.get(preview.provider)
        if host is None:
            return
        try:
            try:
                comment_id = await host.upsert_comment(
                    preview.repository, preview.number, preview.comment_id, body
                )
            except CodeHostError as exc:
                if exc.status != 404 or not preview.comment_id:
                    raise
                # Someone deleted the comment: write a new one.
                comment_id = await host.upsert_comment(preview.repository, preview.number, "", body)
        except ForgebotError as exc:
            log.warning("could not comment on %s#%s: %s", preview.repository, preview.number, exc)
            return
        if comment_id != preview.comment_id:
            await self._set(preview, comment_id=comment_id)
            preview.comment_id = comment_id

    async def _mark_deployment(self, preview: PullRequestPreview) -> None:
        """A code-host deployment per SHA (GitHub's deployments API), marked in progress."""
        host = self.hosts.get(preview.provider)
        if host is None or preview.deployment_sha == preview.head_sha:
            return
        try:
            deployment_id = await host.create_deployment(
                preview.repository,
                preview.head_sha,
                preview.namespace,
                f"forgebot preview of #{preview.number}",
            )
        except ForgebotError as exc:
            log.warning("could not create a deployment for %s: %s", preview.repository, exc)
            return
        await self._set(preview, deployment_id=deployment_id, deployment_sha=preview.head_sha)
        preview.deployment_id = deployment_id
        await self._deployment_status(preview, DeploymentState.IN_PROGRESS, "building")

    async def _deployment_status(
        self, preview: PullRequestPreview, state: DeploymentState, description: str
    ) -> None:
        host = self.hosts.get(preview.provider)
        if host is None or not preview.deployment_id:
            return
        url = views.url_of(preview) if state is DeploymentState.SUCCESS else ""
        try:
            await host.deployment_status(
                preview.repository, preview.deployment_id, state, url, description
            )
        except ForgebotError as exc:
            log.warning("could not mark the deployment of %s: %s", preview.repository, exc)

    async def _audit(
        self,
        preview: PullRequestPreview,
        command: str,
        arguments: dict[str, Any],
        outcome: AuditOutcome = AuditOutcome.OK,
    ) -> None:
        await self.audit.record(
            AuditRecord(
                actor_user_id=BOT,
                command=command,
                outcome=outcome,
                arguments={
                    "pull_request": f"{preview.repository}#{preview.number}",
                    "environment": preview.namespace,
                    **arguments,
                },
                actor_team=preview.team,
            )
        )

    # --- helpers -------------------------------------------------------------------------------------
    def _spec(self, preview: PullRequestPreview) -> tuple[PreviewSpec, Template]:
        spec = self.catalog.preview_for(preview.provider, preview.repository)
        template = self.catalog.template(spec.template) if spec else None
        if spec is None or template is None:
            raise ForgebotError(f"{preview.repository} no longer has previews in the catalog")
        return spec, template

    async def _get(self, preview_id: int) -> PullRequestPreview:
        preview = await self.db.run(lambda s: repo.get(s, preview_id))
        if preview is None:
            raise NotFound(f"preview #{preview_id} does not exist")
        return preview

    async def _set(self, preview: PullRequestPreview, **changes: Any) -> None:
        preview_id, now = _id(preview), self.clock.now()
        await self.db.run(lambda s: repo.set_fields(s, preview_id, now, **changes))


# A price walks a week of the off-hours schedule minute by minute; previews show theirs on
# every update, and share a handful of (size, TTL, schedule) combinations.
_price = functools.lru_cache(maxsize=256)(price_tag)


def _id(preview: PullRequestPreview) -> int:
    if preview.id is None:
        raise ValueError("preview was never stored")
    return preview.id
