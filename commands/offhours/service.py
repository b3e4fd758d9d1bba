"""Off-hours: the rules. Level-triggered reconciliation, as kube-downscaler does it.

Every interval (and at start-up) the desired state of each environment is computed from its
schedule, the time now in the schedule's zone, the catalog's holidays and any override
(snooze, skip tonight, sleep now, wake on demand), and the namespace and its tagged AWS
resources are made to match. Nothing depends on having seen the moment of a change: after an
outage the first pass puts everything where the schedule says it is now. Repeating a pass is
a no-op (see `sweep`). The awake/asleep state in the database moves by guarded transitions,
so owners hear about each change once, whichever replica made it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from commands.offhours import sweep
from commands.offhours.report import SavingsLine, savings
from core.audit import AuditLog, AuditRecord
from core.auth import Action, Actor, Authorizer, Target
from core.block_limits import quoted
from core.catalog import Catalog, Tier
from core.clock import Clock, utc
from core.errors import Conflict, ForgebotError, NotAuthorized, NotFound, UserInputError
from core.schedule import (
    Schedule,
    ScheduleError,
    Transition,
    is_up,
    next_transition,
    parse_schedule,
)
from integrations.aws.resource_types import ENVIRONMENT_TAG, AwsResource, GroupState
from integrations.aws.resources import ResourceControl
from integrations.kubernetes.api_support import ApiNotServed
from integrations.kubernetes.scaling import ClusterSnapshot, Scalable, ScalingGateway
from storage import environments as env_repo
from storage import idempotency
from storage import offhours as repo
from storage.db import Database, DatabaseUnavailable
from storage.models import AuditOutcome, EnvironmentRecord, EnvState
from storage.offhours import OffhoursSetting, OffhoursState

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEDULE_ANNOTATION = "forgebot.io/offhours"
TEAM_ANNOTATION = "forgebot.io/team"
MANAGED_BY = "forgebot.io/managed-by"
KEEP_RUNNING_FOR = timedelta(hours=3)
DEFAULT_WAKE = timedelta(hours=2)
KUBE_KINDS = frozenset(ScalingGateway.KINDS)
ASLEEP_STATES = frozenset({"stopped", "stopping", GroupState.SCALED_TO_ZERO.value})


@dataclass(frozen=True)
class OffhoursTarget:
    environment: str
    cluster: str
    namespace: str
    team: str
    owner: str
    template: str
    size: str

    @classmethod
    def of(cls, record: EnvironmentRecord) -> OffhoursTarget:
        return cls(
            environment=record.name,
            cluster=record.cluster,
            namespace=record.name,
            team=record.team,
            owner=record.owner_user_id,
            template=record.template,
            size=record.size,
        )


@dataclass(frozen=True)
class ResolvedSchedule:
    schedule: Schedule | None
    source: str
    """environment (set in Slack), namespace (annotation), template, or none."""

    @property
    def zone(self) -> str:
        if self.schedule is None or not self.schedule.windows:
            return "UTC"
        return self.schedule.windows[0].zone


@dataclass
class EnvOutcome:
    environment: str
    desired_up: bool | None
    """None when the environment was skipped (its namespace is gone)."""
    acted: str = ""
    """"slept" or "woke" when the state changed in this pass."""
    changed: int = 0
    failures: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class Reminder:
    target: OffhoursTarget
    shutdown_at: datetime
    zone: str
    keep_until: datetime


class AutoSyncControl(Protocol):
    """GitOps controllers that would undo a shutdown (Argo CD self-heal): paused before the
    namespace sleeps, resumed after it wakes (`integrations.kubernetes.argocd_autosync`)."""

    async def pause(self, cluster: str, namespace: str) -> list[str]: ...

    async def resume(self, cluster: str, namespace: str) -> list[str]: ...


class OffhoursNotifier(Protocol):
    async def reminder(self, reminder: Reminder) -> None: ...

    async def changed(
        self, target: OffhoursTarget, outcome: EnvOutcome, zone: str, next_change: datetime | None
    ) -> None: ...

    async def alert(self, target: OffhoursTarget, what: str, error: str) -> None: ...

    async def weekly(self, channel: str, team: str, lines: Sequence[SavingsLine]) -> None: ...


class _DbOriginals:
    """`sweep.OriginalsStore` for one environment, limited to one family of kinds."""

    def __init__(
        self, db: Database, clock: Clock, environment: str, kinds: frozenset[str] | None
    ) -> None:
        self.db, self.clock, self.environment, self.kinds = db, clock, environment, kinds

    async def record(
        self, items: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        now = self.clock.now()
        return await self.db.run(lambda s: repo.record_originals(s, self.environment, items, now))

    async def live(self) -> dict[tuple[str, str], dict[str, Any]]:
        rows = await self.db.run(lambda s: repo.live_originals(s, self.environment))
        return {
            (r.kind, r.name): dict(r.original)
            for r in rows
            if self.kinds is None or r.kind in self.kinds
        }

    async def close(self, outcomes: dict[tuple[str, str], str]) -> None:
        now = self.clock.now()
        await self.db.run(lambda s: repo.close_originals(s, self.environment, outcomes, now))


@dataclass
class OffhoursService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    audit: AuditLog
    scaling: ScalingGateway
    notify: OffhoursNotifier
    aws: ResourceControl | None = None
    autosync: AutoSyncControl | None = None
    retry_delays: tuple[float, ...] = (1.0, 4.0)
    """Pauses between attempts within one pass; the next pass retries again after these."""
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    # --- schedules ---------------------------------------------------------------------------
    def resolve(
        self, target: OffhoursTarget, setting: OffhoursSetting | None, annotation: str | None
    ) -> ResolvedSchedule:
        """Environment setting, then namespace annotation, then template; none: always on."""
        candidates = [
            ("environment", setting.schedule if setting else ""),
            ("namespace", annotation or ""),
        ]
        template = self.catalog.template(target.template)
        candidates.append(("template", template.offhours if template and template.offhours else ""))
        for source, text in candidates:
            if not text:
                continue
            try:
                return ResolvedSchedule(parse_schedule(text), source)
            except ScheduleError as exc:
                log.warning("ignoring the %s schedule of %s: %s", source, target.environment, exc)
        return ResolvedSchedule(None, "none")

    def desired_up(
        self, resolved: ResolvedSchedule, setting: OffhoursSetting | None, now: datetime
    ) -> bool:
        if (
            setting is not None
            and setting.override_up is not None
            and setting.override_until
            and now < utc(setting.override_until)
        ):
            return setting.override_up
        if resolved.schedule is None:
            return True
        return is_up(resolved.schedule, now, self.catalog.holidays)

    def next_shutdown(
        self,
        resolved: ResolvedSchedule,
        setting: OffhoursSetting | None,
        now: datetime,
        within: timedelta,
    ) -> datetime | None:
        """When the environment next goes to sleep, overrides included, if within `within`."""
        if resolved.schedule is None or resolved.schedule.always_on:
            return None
        schedule = resolved.schedule
        holidays = tuple(self.catalog.holidays)
        if setting is not None and setting.override_until and now < utc(setting.override_until):
            until = utc(setting.override_until)
            if setting.override_up is False:
                return None
            if not is_up(schedule, until, holidays):
                return until if until - now <= within else None
            return None
        if not is_up(schedule, now, holidays):
            return None
        change = _next_transition(schedule, _minute(now), holidays, within + timedelta(minutes=1))
        return change.at if change is not None and not change.up else None

    def next_change(
        self, resolved: ResolvedSchedule, setting: OffhoursSetting | None, now: datetime
    ) -> datetime | None:
        if resolved.schedule is None or resolved.schedule.always_on:
            return None
        if setting is not None and setting.override_until and now < utc(setting.override_until):
            return utc(setting.override_until)
        change = _next_transition(
            resolved.schedule, _minute(now), tuple(self.catalog.holidays), timedelta(days=8)
        )
        return change.at if change else None

    # --- the reconciler ----------------------------------------------------------------------
    async def targets(
        self, snapshots: dict[str, ClusterSnapshot] | None = None
    ) -> list[OffhoursTarget]:
        """Active environments, plus any other namespace annotated with a schedule on a cluster
        that hosts non-production environments (kube-downscaler's per-namespace opt-in)."""
        records = await self.db.run(lambda s: env_repo.live(s))
        targets = [OffhoursTarget.of(r) for r in records if r.state == EnvState.ACTIVE]
        taken = {r.name for r in records}
        never = self._never_asleep()
        for cluster in self._offhours_clusters():
            snapshot = (snapshots or {}).get(cluster)
            try:
                found = (
                    [
                        (name, ns.labels, ns.annotations)
                        for name, ns in snapshot.namespaces.items()
                        if SCHEDULE_ANNOTATION in ns.annotations and ns.phase != "Terminating"
                    ]
                    if snapshot is not None
                    else await self.scaling.annotated_namespaces(cluster, SCHEDULE_ANNOTATION)
                )
            except ForgebotError as exc:
                log.warning("off-hours cannot list the namespaces of %s: %s", cluster, exc)
                continue
            for name, labels, notes in found:
                if (
                    name in taken
                    or (cluster, name) in never
                    or labels.get(MANAGED_BY) == "forgebot"  # an environment's, now gone
                ):
                    continue
                taken.add(name)
                team = notes.get(TEAM_ANNOTATION) or self._workload_team(cluster, name)
                targets.append(OffhoursTarget(name, cluster, name, team, "", "", ""))
        return targets

    def _offhours_clusters(self) -> list[str]:
        clusters = {t.cluster for t in self.catalog.templates}
        clusters |= {
            e.cluster
            for e in self.catalog.environments
            if e.policy.offhours and e.tier != Tier.PROD
        }
        return sorted(clusters)

    def _never_asleep(self) -> set[tuple[str, str]]:
        """Namespaces of catalog environments that must not sleep (prod, or offhours: false),
        whatever their annotations say."""
        protected: set[tuple[str, str]] = set()
        for service in self.catalog.services:
            for env_name, workload in service.workloads.items():
                env = self.catalog.environment(env_name)
                if env is None or not env.policy.offhours or env.tier == Tier.PROD:
                    protected.add((workload.cluster, workload.namespace))
        return protected

    def _workload_team(self, cluster: str, namespace: str) -> str:
        for service in self.catalog.services:
            for workload in service.workloads.values():
                if (workload.cluster, workload.namespace) == (cluster, namespace):
                    return service.team
        return ""

    async def reconcile_job(self, slot: datetime) -> None:
        await self.reconcile()

    async def reconcile(self) -> list[EnvOutcome]:
        """One pass over every active environment (the scheduled job's body).

        Each cluster is read once, in pages (`ScalingGateway.snapshot`): at scale the pass
        costs about one patch per object that changes, not four lists and a namespace read
        per environment as well. A cluster that cannot be read whole is read per namespace."""
        snapshots = await self.snapshots()
        targets = await self.targets(snapshots)
        now = self.clock.now()
        names = [t.environment for t in targets]
        await self.db.run(lambda s: repo.close_sleeps_except(s, names, now))
        return list(
            await asyncio.gather(
                *(self.reconcile_target(t, snapshots.get(t.cluster)) for t in targets)
            )
        )

    async def snapshots(self) -> dict[str, ClusterSnapshot]:
        clusters = self._offhours_clusters()

        async def read(cluster: str) -> ClusterSnapshot | None:
            try:
                return await self.scaling.snapshot(cluster)
            except ForgebotError as exc:
                log.warning(
                    "off-hours cannot read %s whole, reading per namespace: %s", cluster, exc
                )
                return None

        found = await asyncio.gather(*(read(c) for c in clusters))
        return {c: s for c, s in zip(clusters, found, strict=True) if s is not None}

    async def reconcile_environment(self, name: str) -> EnvOutcome:
        return await self.reconcile_target(await self._target(name))

    async def reconcile_target(
        self, target: OffhoursTarget, snapshot: ClusterSnapshot | None = None
    ) -> EnvOutcome:
        # One pass per environment at a time in this process; across replicas the scheduler's
        # slot claim and the guarded state transitions keep passes from acting twice.
        lock = self._locks.setdefault(target.environment, asyncio.Lock())
        async with lock:
            try:
                return await self._reconcile(target, snapshot)
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                # A bug or a shape nobody foresaw must not fail every pass silently, nor stop
                # the other environments: the owner hears once per episode, like any failure.
                log.exception("off-hours reconcile of %s crashed", target.environment)
                now = self.clock.now()
                setting = await self.db.run(lambda s: repo.setting(s, target.environment, now))
                return await self._failed(
                    target, setting, None, [f"an internal error ({type(exc).__name__})"]
                )

    async def _namespace_annotations(
        self, target: OffhoursTarget, snapshot: ClusterSnapshot | None
    ) -> dict[str, str]:
        if snapshot is None:
            return await self._attempts(
                lambda: self.scaling.namespace_annotations(target.cluster, target.namespace)
            )
        found = snapshot.namespaces.get(target.namespace)
        if found is None:
            raise NotFound(f"namespace {target.namespace} was not found on {target.cluster}")
        return found.annotations

    async def _reconcile(
        self, target: OffhoursTarget, snapshot: ClusterSnapshot | None = None
    ) -> EnvOutcome:
        now = self.clock.now()
        setting = await self.db.run(lambda s: repo.setting(s, target.environment, now))
        try:
            annotations = await self._namespace_annotations(target, snapshot)
        except NotFound:
            await self.db.run(lambda s: repo.close_sleep(s, target.environment, now))
            return EnvOutcome(target.environment, None, note="namespace is gone")
        except ForgebotError as exc:
            # Unreachable: say what it should have done, by the schedule known without it.
            fallback = self.desired_up(self.resolve(target, setting, None), setting, now)
            return await self._failed(target, setting, fallback, [str(exc)])
        resolved = self.resolve(target, setting, annotations.get(SCHEDULE_ANNOTATION))
        want_up = self.desired_up(resolved, setting, now)
        if want_up:
            await self._maybe_remind(target, resolved, setting, now)
        failures: list[str] = []
        changed = 0
        # The snapshot's objects serve the first attempt; a retry lists them afresh.
        listed = [snapshot.scalables.get(target.namespace, [])] if snapshot is not None else []
        lacking = snapshot.lacking if snapshot is not None else []
        try:
            if want_up:
                result = await self._attempts(
                    lambda: self._wake_all(target, listed.pop() if listed else None, lacking)
                )
            else:
                result = await self._attempts(
                    lambda: self._sleep_all(target, listed.pop() if listed else None, lacking)
                )
            changed = result.changed
        except ForgebotError as exc:
            failures = [str(exc)]
        if failures:
            return await self._failed(target, setting, want_up, failures)
        return await self._succeeded(target, setting, resolved, want_up, changed, now)

    async def _attempts(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` (a coroutine factory), retrying what failed after the configured pauses.
        A partial failure raises after the last attempt with everything that failed."""
        for pause in (*self.retry_delays, None):
            try:
                result = await work()
            except NotFound:
                raise
            except ForgebotError:
                if pause is None:
                    raise
            else:
                if not isinstance(result, sweep.SweepResult) or result.ok:
                    return result
                if pause is None:
                    raise ForgebotError("; ".join(result.failures[:5]))
            await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def _sleep_all(
        self,
        target: OffhoursTarget,
        listed: list[Scalable] | None = None,
        lacking: Sequence[ApiNotServed] = (),
    ) -> sweep.SweepResult:
        store = _DbOriginals(self.db, self.clock, target.environment, KUBE_KINDS)
        if self.autosync is not None:
            try:
                # First, or Argo CD's self-heal scales everything back up within minutes.
                await self.autosync.pause(target.cluster, target.namespace)
            except ForgebotError as exc:
                return sweep.SweepResult(failures=[f"pausing Argo CD auto-sync: {exc}"])
        result = await sweep.shutdown(
            self.scaling, store, target.cluster, target.namespace, listed, lacking
        )
        aws_failures = await self._sleep_aws(target)
        result.failures.extend(aws_failures)
        return result

    async def _wake_all(
        self,
        target: OffhoursTarget,
        listed: list[Scalable] | None = None,
        lacking: Sequence[ApiNotServed] = (),
    ) -> sweep.SweepResult:
        store = _DbOriginals(self.db, self.clock, target.environment, KUBE_KINDS)
        result = await sweep.wake(
            self.scaling, store, target.cluster, target.namespace, listed, lacking
        )
        result.failures.extend(await self._wake_aws(target))
        if self.autosync is not None and result.ok:
            # Last: the counts are back as they were, so Argo CD finds nothing to heal.
            try:
                await self.autosync.resume(target.cluster, target.namespace)
            except ForgebotError as exc:
                result.failures.append(f"resuming Argo CD auto-sync: {exc}")
        return result

    async def _sleep_aws(self, target: OffhoursTarget) -> list[str]:
        if self.aws is None:
            return []
        store = _DbOriginals(self.db, self.clock, target.environment, None)
        recorded = await store.live()
        found = await self.aws.find_tagged(ENVIRONMENT_TAG, target.environment)
        # Off already (its owner stopped it): recording it would make the wake start it.
        todo = [
            r
            for r in found.resources
            if (r.kind.value, r.id) not in recorded and r.state not in ASLEEP_STATES
        ]
        if not todo:
            return []
        await store.record([(r.kind.value, r.id, r.model_dump(mode="json")) for r in todo])
        failures: list[str] = []
        for resource in todo:
            try:
                outcome = await self.aws.sleep(resource)
            except ForgebotError as exc:
                failures.append(f"{resource.kind.value} {resource.id}: {exc}")
                continue
            if not outcome.acted:
                # It was already off by its owner's choice; waking it later would undo that.
                await self.db.run(
                    functools.partial(
                        repo.forget_original,
                        environment=target.environment,
                        kind=resource.kind.value,
                        name=resource.id,
                    )
                )
        return failures

    async def _wake_aws(self, target: OffhoursTarget) -> list[str]:
        if self.aws is None:
            return []
        store = _DbOriginals(self.db, self.clock, target.environment, None)
        recorded = {k: v for k, v in (await store.live()).items() if k[0] not in KUBE_KINDS}
        failures: list[str] = []
        outcomes: dict[tuple[str, str], str] = {}
        for key, original in recorded.items():
            try:
                await self.aws.wake(AwsResource.model_validate(original))
                outcomes[key] = "started"
            except NotFound:
                outcomes[key] = "gone: deleted while asleep"
            except ForgebotError as exc:
                failures.append(f"{key[0]} {key[1]}: {exc}")
        if outcomes:
            await store.close(outcomes)
        return failures

    async def _succeeded(
        self,
        target: OffhoursTarget,
        setting: OffhoursSetting,
        resolved: ResolvedSchedule,
        want_up: bool,
        changed: int,
        now: datetime,
    ) -> EnvOutcome:
        outcome = EnvOutcome(target.environment, want_up, changed=changed)
        expected, to = (
            (OffhoursState.ASLEEP, OffhoursState.AWAKE)
            if want_up
            else (OffhoursState.AWAKE, OffhoursState.ASLEEP)
        )
        moved = await self.db.run(
            lambda s: repo.move_state(
                s,
                target.environment,
                expected=expected,
                to=to,
                now=now,
                failures=0,
                last_error="",
                alerted_for="",
            )
        )
        if setting.failures:
            await self.db.run(
                lambda s: repo.update_setting(
                    s, target.environment, now, failures=0, last_error="", alerted_for=""
                )
            )
        if not moved:
            return outcome
        if want_up:
            await self.db.run(lambda s: repo.close_sleep(s, target.environment, now))
        else:
            hourly, currency = self.hourly_cost(target)
            await self.db.run(
                lambda s: repo.open_sleep(
                    s, target.environment, target.team, now, str(hourly), currency
                )
            )
        outcome.acted = "woke" if want_up else "slept"
        await self._audit(
            "forgebot",
            target,
            f"offhours.{outcome.acted}",
            {"objects_changed": changed, "schedule": resolved.source},
        )
        if changed:  # an empty namespace changed nothing: nothing worth a message
            fresh = await self.db.run(lambda s: repo.setting(s, target.environment, now))
            await self.notify.changed(
                target, outcome, resolved.zone, self.next_change(resolved, fresh, now)
            )
        return outcome

    async def _failed(
        self,
        target: OffhoursTarget,
        setting: OffhoursSetting,
        want_up: bool | None,
        failures: list[str],
    ) -> EnvOutcome:
        """Retried on the next pass; the owner hears once per streak of failures."""
        now = self.clock.now()
        error = "; ".join(failures)[:1000]
        what = "wake" if want_up else "sleep" if want_up is False else "check"
        await self.db.run(
            lambda s: repo.update_setting(
                s, target.environment, now, failures=setting.failures + 1, last_error=error
            )
        )
        log.warning("off-hours could not %s %s: %s", what, target.environment, error)
        if await self.db.run(lambda s: repo.mark_alerted(s, target.environment, what, now)):
            await self.notify.alert(target, what, error)
            await self._audit(
                "forgebot", target, "offhours.failed", {"action": what, "error": error[:300]}
            )
        return EnvOutcome(target.environment, want_up, failures=failures)

    # --- reminders and choices -----------------------------------------------------------------
    async def _maybe_remind(
        self,
        target: OffhoursTarget,
        resolved: ResolvedSchedule,
        setting: OffhoursSetting,
        now: datetime,
    ) -> None:
        lead = self.catalog.schedules.offhours_reminder_lead
        shutdown_at = self.next_shutdown(resolved, setting, now, lead)
        if shutdown_at is None or shutdown_at - now > lead:
            return
        if not await self.db.run(
            lambda s: repo.mark_reminded(s, target.environment, shutdown_at, now)
        ):
            return
        await self.notify.reminder(
            Reminder(target, shutdown_at, resolved.zone, shutdown_at + KEEP_RUNNING_FOR)
        )

    async def choose(self, actor: Actor, environment: str, shutdown_iso: str, choice: str) -> str:
        """A reminder button: keep (running 3 h longer), skip (tonight), sleep (now)."""
        target = await self._target(environment)
        self._authorize(actor, Action.OFFHOURS_SNOOZE, target)
        try:
            shutdown_at = utc(datetime.fromisoformat(shutdown_iso))
        except ValueError:
            raise UserInputError("That button is broken; use `/forge env wake` instead.") from None
        now = self.clock.now()
        setting = await self.db.run(lambda s: repo.setting(s, environment, now))
        annotations = await self.scaling.namespace_annotations(target.cluster, target.namespace)
        resolved = self.resolve(target, setting, annotations.get(SCHEDULE_ANNOTATION))
        zone = ZoneInfo(resolved.zone)
        if now >= self._next_wake(resolved, shutdown_at):
            raise Conflict(
                f"This reminder was for the night of {_local(shutdown_at, zone)}, which is over; "
                f"`/forge env wake {environment}` wakes it now."
            )
        key = f"offhours.choice:{environment}:{shutdown_iso}:{choice}"
        if not await self.db.run(lambda s: idempotency.claim(s, key, now)):
            raise Conflict("That choice was already made; nothing more to do.")
        if choice == "keep":
            until, up = shutdown_at + KEEP_RUNNING_FOR, True
            message = f"{environment} keeps running until {_local(until, zone)}."
        elif choice == "skip":
            until, up = self._next_wake(resolved, shutdown_at), True
            message = f"{environment} skips tonight's sleep; it runs until {_local(until, zone)}."
        elif choice == "sleep":
            until, up = max(shutdown_at, now + timedelta(minutes=1)), False
            message = f"{environment} goes to sleep now."
        else:
            raise UserInputError(f"{quoted(choice)} is not an off-hours choice.")
        await self._override(actor, target, up, until, f"reminder: {choice}")
        await self.reconcile_target(target)
        return message

    def _next_wake(self, resolved: ResolvedSchedule, after: datetime) -> datetime:
        if resolved.schedule is not None:
            change = next_transition(
                resolved.schedule, after + timedelta(minutes=1), self.catalog.holidays
            )
            if change is not None and change.up:
                return change.at
        return after + timedelta(hours=12)

    async def wake_for(
        self, actor: Actor, environment: str, duration: timedelta | None
    ) -> tuple[datetime, str]:
        """`/forge env wake ENV [for 3h]`: up now, and back to the schedule after. Returns
        until when, and the schedule's zone to say it in."""
        target = await self._target(environment)
        self._authorize(actor, Action.ENV_WAKE, target)
        until = self.clock.now() + (duration or DEFAULT_WAKE)
        await self._override(actor, target, True, until, "woken on demand")
        now = self.clock.now()
        setting = await self.db.run(lambda s: repo.setting(s, environment, now))
        return until, self.resolve(target, setting, None).zone

    async def _override(
        self, actor: Actor, target: OffhoursTarget, up: bool, until: datetime, reason: str
    ) -> None:
        now = self.clock.now()
        await self.db.run(
            lambda s: repo.update_setting(
                s,
                target.environment,
                now,
                override_up=up,
                override_until=until,
                override_by=actor.user_id,
                override_reason=reason,
            )
        )
        await self._audit(
            actor.user_id,
            target,
            "offhours.override",
            {"up": up, "until": until.isoformat(), "reason": reason},
        )

    async def set_schedule(self, actor: Actor, environment: str, text: str) -> Schedule:
        target = await self._target(environment)
        self._authorize(actor, Action.OFFHOURS_SET, target)
        try:
            schedule = parse_schedule(text)
        except ScheduleError as exc:
            raise UserInputError(str(exc)) from None
        now = self.clock.now()
        canonical = schedule.canonical()
        await self.db.run(
            lambda s: repo.update_setting(
                s,
                environment,
                now,
                schedule=canonical,
                override_up=None,
                override_until=None,
                reminded_for=None,
            )
        )
        await self._audit(actor.user_id, target, "offhours.set", {"schedule": canonical})
        return schedule

    async def status(self, environment: str) -> tuple[OffhoursTarget, ResolvedSchedule, Any]:
        target = await self._target(environment)
        now = self.clock.now()
        setting = await self.db.run(lambda s: repo.setting(s, environment, now))
        annotations = await self.scaling.namespace_annotations(target.cluster, target.namespace)
        resolved = self.resolve(target, setting, annotations.get(SCHEDULE_ANNOTATION))
        return target, resolved, (setting, self.next_change(resolved, setting, now))

    async def states_of(self, owner: str) -> list[tuple[str, str]]:
        """(environment, awake|asleep) for a user's active environments."""
        records = await self.db.run(lambda s: env_repo.live(s, owner=owner))
        names = [r.name for r in records if r.state == EnvState.ACTIVE]
        known = await self.db.run(lambda s: repo.settings(s, names))
        return [(n, known[n].state if n in known else OffhoursState.AWAKE) for n in names]

    # --- savings -------------------------------------------------------------------------------
    def hourly_cost(self, target: OffhoursTarget) -> tuple[Decimal, str]:
        template = self.catalog.template(target.template)
        pricing = self.catalog.pricing
        if template is None or target.size not in template.sizes:
            return Decimal(0), pricing.currency
        quota = template.sizes[target.size]  # type: ignore[index]
        return quota.cpu * pricing.vcpu_hour + quota.memory_gib * pricing.gib_hour, pricing.currency

    def check_team(self, team: str | None) -> None:
        if team is not None and self.catalog.team(team) is None:
            known = ", ".join(t.name for t in self.catalog.teams)
            raise UserInputError(f"There is no team called {team}; the catalog has {known}.")

    async def report(
        self, actor: Actor, team: str | None, period: timedelta
    ) -> tuple[str, list[SavingsLine]]:
        self.check_team(team)
        if team is None:
            mine = self.auth.primary_team(actor.user_id)
            team = mine.name if mine else None
        end = self.clock.now()
        start = end - period
        teams = [team] if team else None
        sleeps = await self.db.run(lambda s: repo.sleeps_overlapping(s, start, end, teams))
        return team or "all teams", savings(sleeps, start, end)

    async def weekly_summary(self, slot: datetime) -> None:
        end = self.clock.now()
        start = end - timedelta(days=7)
        sleeps = await self.db.run(lambda s: repo.sleeps_overlapping(s, start, end))
        lines = savings(sleeps, start, end)
        for team in self.catalog.teams:
            # Only what says something: environments that slept, not a table of zeros.
            mine = [
                line
                for line in lines
                if line.team == team.name and (line.hours > 0 or line.saved > 0)
            ]
            if mine:
                await self.notify.weekly(team.channel, team.name, mine)

    # --- helpers ---------------------------------------------------------------------------------
    async def _target(self, name: str) -> OffhoursTarget:
        record = await self.db.run(lambda s: env_repo.live_by_name(s, name))
        if record is None:
            raise NotFound(
                f"There is no environment called {name}. `/forge env list all` shows them all."
            )
        if record.state != EnvState.ACTIVE:
            raise Conflict(f"{name} is {record.state}; off-hours applies to active environments.")
        return OffhoursTarget.of(record)

    def _authorize(self, actor: Actor, action: Action, target: OffhoursTarget) -> None:
        decision = self.auth.authorize(
            actor, action, Target(team=target.team, owner_user_id=target.owner)
        )
        if not decision.allowed:
            raise NotAuthorized(decision.explain(action))

    async def _audit(
        self, actor: str, target: OffhoursTarget, command: str, arguments: dict[str, Any]
    ) -> None:
        await self.audit.record(
            AuditRecord(
                actor_user_id=actor,
                command=command,
                outcome=AuditOutcome.OK,
                arguments={"environment": target.environment, **arguments},
                actor_team=target.team,
            )
        )


def _minute(when: datetime) -> datetime:
    return when.replace(second=0, microsecond=0)


@functools.lru_cache(maxsize=2048)
def _next_transition(
    schedule: Schedule, after: datetime, holidays: tuple[date, ...], horizon: timedelta
) -> Transition | None:
    """Schedules are evaluated minute by minute (exact across DST), which costs ~10k steps for
    a week; environments share a handful of schedules, so one pass computes each once."""
    return next_transition(schedule, after, holidays, horizon)


def _local(when: datetime, zone: ZoneInfo) -> str:
    return f"{when.astimezone(zone):%H:%M} {zone.key}"
