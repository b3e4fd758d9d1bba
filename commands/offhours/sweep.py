"""Putting one namespace to sleep and waking it, level-triggered and safe to repeat.

Shutdown: every Deployment and StatefulSet goes to 0 replicas and every CronJob is suspended;
HPAs get `minReplicas` lowered to 1 (the API's minimum; an HPA does nothing while its target is
at 0). What each object had is recorded in the database first and then on the object itself,
in the same patch that changes it. An object that already carries a record is left alone, so
repeating a shutdown is a no-op and never overwrites an original, and a person who scales an
object by hand while it sleeps keeps their count.

Wake: every object with a record gets exactly its original back (never "1 by default"),
unless someone changed it by hand meanwhile, in which case their value stays. Records whose
object was deleted while asleep are closed as gone.

Patches carry the `resourceVersion` that was read, so a concurrent change is a 409 that is
answered by reading again, never a lost update.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.errors import Conflict, ForgebotError, NotFound
from integrations.kubernetes.api_support import ApiNotServed
from integrations.kubernetes.scaling import (
    CRON_JOB,
    DEPLOYMENT,
    HPA,
    STATEFUL_SET,
    KindsNotServed,
    Scalable,
)

log = logging.getLogger(__name__)

ORIGINAL_REPLICAS = "forgebot.io/original-replicas"
ORIGINAL_SUSPEND = "forgebot.io/original-suspend"
ORIGINAL_MIN_REPLICAS = "forgebot.io/original-min-replicas"
EXCLUDE = "forgebot.io/exclude"
HPA_FLOOR = 1
CONFLICT_ATTEMPTS = 4

_ANNOTATION = {
    DEPLOYMENT: ORIGINAL_REPLICAS,
    STATEFUL_SET: ORIGINAL_REPLICAS,
    CRON_JOB: ORIGINAL_SUSPEND,
    HPA: ORIGINAL_MIN_REPLICAS,
}


class Scaler(Protocol):
    async def list_scalables(self, cluster: str, namespace: str) -> list[Scalable]: ...

    async def read(self, cluster: str, namespace: str, kind: str, name: str) -> Scalable: ...

    async def patch(
        self, cluster: str, namespace: str, kind: str, name: str, body: dict[str, Any]
    ) -> Scalable: ...


class OriginalsStore(Protocol):
    """The database side of one environment's originals."""

    async def record(
        self, items: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> dict[tuple[str, str], dict[str, Any]]: ...

    async def live(self) -> dict[tuple[str, str], dict[str, Any]]: ...

    async def close(self, outcomes: dict[tuple[str, str], str]) -> None: ...


@dataclass
class SweepResult:
    changed: int = 0
    unchanged: int = 0
    kept_by_hand: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _excluded(obj: Scalable) -> bool:
    return obj.annotations.get(EXCLUDE, "").lower() == "true"


def sleep_original(obj: Scalable) -> dict[str, Any] | None:
    """What to record before putting `obj` to sleep, or None when there is nothing to do."""
    if _excluded(obj) or _ANNOTATION[obj.kind] in obj.annotations:
        return None
    if obj.kind in (DEPLOYMENT, STATEFUL_SET):
        return {"replicas": obj.replicas} if obj.replicas else None
    if obj.kind == CRON_JOB:
        # One its owner suspended stays theirs: waking must not resume it.
        return None if obj.suspended else {"suspend": False}
    if obj.kind == HPA:
        current = obj.min_replicas or HPA_FLOOR
        return {"minReplicas": current} if current > HPA_FLOOR else None
    return None


def _sleep_body(obj: Scalable, original: dict[str, Any]) -> dict[str, Any]:
    meta = {"resourceVersion": obj.resource_version}
    if obj.kind in (DEPLOYMENT, STATEFUL_SET):
        meta["annotations"] = {ORIGINAL_REPLICAS: str(original["replicas"])}  # type: ignore[assignment]
        return {"metadata": meta, "spec": {"replicas": 0}}
    if obj.kind == CRON_JOB:
        meta["annotations"] = {ORIGINAL_SUSPEND: str(original["suspend"]).lower()}  # type: ignore[assignment]
        return {"metadata": meta, "spec": {"suspend": True}}
    meta["annotations"] = {ORIGINAL_MIN_REPLICAS: str(original["minReplicas"])}  # type: ignore[assignment]
    return {"metadata": meta, "spec": {"minReplicas": HPA_FLOOR}}


def _from_annotation(obj: Scalable) -> dict[str, Any] | None:
    raw = obj.annotations.get(_ANNOTATION[obj.kind])
    if raw is None:
        return None
    try:
        if obj.kind == CRON_JOB:
            return {"suspend": raw.strip().lower() == "true"}
        key = "minReplicas" if obj.kind == HPA else "replicas"
        return {key: int(raw)}
    except ValueError:
        return None


def _wake_body(obj: Scalable, original: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The patch that restores `obj`, and what it did (for the record and the report)."""
    meta: dict[str, Any] = {
        "resourceVersion": obj.resource_version,
        "annotations": {_ANNOTATION[obj.kind]: None},
    }
    if obj.kind in (DEPLOYMENT, STATEFUL_SET):
        wanted = int(original["replicas"])
        if obj.replicas:  # scaled by hand while asleep: the person's count stays
            return {"metadata": meta}, f"kept hand-set {obj.replicas} (original {wanted})"
        return {"metadata": meta, "spec": {"replicas": wanted}}, f"restored {wanted}"
    if obj.kind == CRON_JOB:
        suspend = bool(original["suspend"])
        if not obj.suspended:
            return {"metadata": meta}, "already resumed by hand"
        return {"metadata": meta, "spec": {"suspend": suspend}}, f"suspend={str(suspend).lower()}"
    wanted = int(original["minReplicas"])
    if (obj.min_replicas or HPA_FLOOR) != HPA_FLOOR:
        return {"metadata": meta}, f"kept hand-set minReplicas {obj.min_replicas}"
    return {"metadata": meta, "spec": {"minReplicas": wanted}}, f"minReplicas {wanted}"


async def _patch_fresh(
    scaler: Scaler,
    cluster: str,
    namespace: str,
    obj: Scalable,
    body_for: Callable[[Scalable], dict[str, Any] | None],
) -> Scalable | None:
    """Patch with the version read; on 409 read again and recompute (None: nothing to do)."""
    current = obj
    for _ in range(CONFLICT_ATTEMPTS):
        body = body_for(current)
        if body is None:
            return None
        try:
            return await scaler.patch(cluster, namespace, current.kind, current.name, body)
        except Conflict:
            current = await scaler.read(cluster, namespace, current.kind, current.name)
    raise Conflict(f"{obj.kind} {obj.name} in {namespace} kept changing; will retry")


async def _each(jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    await asyncio.gather(*(job() for job in jobs))


async def _listing(
    scaler: Scaler,
    cluster: str,
    namespace: str,
    result: SweepResult,
    listed: list[Scalable] | None,
    lacking: Sequence[ApiNotServed],
) -> tuple[list[Scalable], set[str]]:
    """What the namespace holds, and the kinds the cluster does not serve (too old: those are
    reported as failures while the served kinds are still handled). `listed` and `lacking`
    come from this pass's cluster snapshot; without them the namespace is listed here."""
    try:
        if listed is None:
            return await scaler.list_scalables(cluster, namespace), set()
        if lacking:
            raise KindsNotServed(list(lacking), listed)
        return listed, set()
    except KindsNotServed as exc:
        result.failures.append(str(exc))
        return exc.found, set(exc.kinds)


async def shutdown(
    scaler: Scaler,
    store: OriginalsStore,
    cluster: str,
    namespace: str,
    listed: list[Scalable] | None = None,
    lacking: Sequence[ApiNotServed] = (),
) -> SweepResult:
    """`listed`: the namespace's objects from this pass's cluster snapshot (else listed here);
    a stale one only costs a 409 and a fresh read."""
    result = SweepResult()
    objects, _ = await _listing(scaler, cluster, namespace, result, listed, lacking)
    todo = [(obj, original) for obj in objects if (original := sleep_original(obj)) is not None]
    result.unchanged = len(objects) - len(todo)
    if not todo:
        return result
    # The database first: from here on the original survives whatever happens to the patch.
    recorded = await store.record([(o.kind, o.name, original) for o, original in todo])
    gone: dict[tuple[str, str], str] = {}

    def job(obj: Scalable) -> Callable[[], Awaitable[None]]:
        original = recorded[(obj.kind, obj.name)]

        def body(current: Scalable) -> dict[str, Any] | None:
            # Re-read after a 409: someone may have put it to sleep or excluded it meanwhile.
            if current is not obj and sleep_original(current) is None:
                return None
            return _sleep_body(current, original)

        async def run() -> None:
            try:
                await _patch_fresh(scaler, cluster, namespace, obj, body)
                result.changed += 1
            except NotFound:
                gone[(obj.kind, obj.name)] = "gone: deleted before shutdown"
                result.gone.append(f"{obj.kind} {obj.name}")
            except ForgebotError as exc:
                result.failures.append(f"{obj.kind} {obj.name}: {exc}")

        return run

    await _each([job(obj) for obj, _ in todo])
    if gone:
        await store.close(gone)
    return result


async def wake(
    scaler: Scaler,
    store: OriginalsStore,
    cluster: str,
    namespace: str,
    listed: list[Scalable] | None = None,
    lacking: Sequence[ApiNotServed] = (),
) -> SweepResult:
    result = SweepResult()
    listed, unserved = await _listing(scaler, cluster, namespace, result, listed, lacking)
    objects = {(o.kind, o.name): o for o in listed}
    recorded = await store.live()
    outcomes: dict[tuple[str, str], str] = {}
    for key in recorded:
        if key not in objects and key[0] not in unserved:
            outcomes[key] = "gone: deleted while asleep"
            result.gone.append(f"{key[0]} {key[1]}")
    todo: list[tuple[Scalable, dict[str, Any]]] = []
    for key, obj in objects.items():
        # The database record wins: it was written first and is never overwritten.
        original = recorded.get(key) or _from_annotation(obj)
        if original is None:
            continue
        todo.append((obj, original))

    def job(obj: Scalable, original: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        what: list[str] = []

        def body(current: Scalable) -> dict[str, Any] | None:
            if current is not obj and key_absent(current):
                return None
            patch, outcome = _wake_body(current, original)
            what[:] = [outcome]
            return patch

        def key_absent(current: Scalable) -> bool:
            return (
                _ANNOTATION[current.kind] not in current.annotations
                and (current.kind, current.name) not in recorded
            )

        async def run() -> None:
            try:
                await _patch_fresh(scaler, cluster, namespace, obj, body)
                outcome = what[0] if what else "already awake"
                outcomes[(obj.kind, obj.name)] = outcome
                if outcome.startswith("kept"):
                    result.kept_by_hand.append(f"{obj.kind} {obj.name}: {outcome}")
                result.changed += 1
            except NotFound:
                outcomes[(obj.kind, obj.name)] = "gone: deleted while waking"
                result.gone.append(f"{obj.kind} {obj.name}")
            except ForgebotError as exc:
                result.failures.append(f"{obj.kind} {obj.name}: {exc}")

        return run

    await _each([job(obj, original) for obj, original in todo])
    if outcomes:
        await store.close(outcomes)
    return result
