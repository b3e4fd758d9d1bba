"""Argo Rollouts `Rollout` (argoproj.io/v1alpha1): its canary as `kubectl argo rollouts get
rollout` shows it, and the plugin's promote, promote --full, abort and retry.

Read as raw JSON through the gateway's bounded thread pool (a followed canary is read every
poll). The canary is judged from the Rollout's `status`:

- done when `phase` is `Healthy`, the controller has observed the spec (`observedGeneration`)
  and the stable ReplicaSet is the current one (`stableRS == currentPodHash`);
- failed when it was aborted (`status.abort`: by a person or a failed analysis; the reason is
  `status.message` and the failed analysis run's message) or `phase` is `Degraded`;
- waiting (the follow timeout does not run) while it pauses, at a step or by hand, or an
  analysis runs.

The writes are the kubectl plugin's, on the `status` subresource where it writes status:
promote clears `status.pauseConditions` and sets `spec.paused: false` (or, with nothing paused,
moves `status.currentStepIndex` one step on); promote full sets `status.promoteFull`; abort
sets `status.abort`; retry clears it. Each read-modify-write carries the `resourceVersion` it
read, so a concurrent change answers 409 instead of being overwritten.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import Conflict, NotFound
from core.lazy_import import lazy_module
from integrations.kubernetes.gateway import TIMEOUT, DeploymentFacts, KubeGateway
from integrations.kubernetes.rollout import RolloutStatus

if TYPE_CHECKING:
    from kubernetes import client
else:
    client = lazy_module("kubernetes.client")

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"
ANALYSIS_RUNS = "analysisruns"
REVISION = "rollout.argoproj.io/revision"
PAUSED_BY = "forgebot.io/paused-by"
"""Why forgebot paused the canary (the error-budget burn), kept on the Rollout so every
replica and every later message says it."""
PERMISSIONS = frozenset(
    {
        ("get", GROUP, PLURAL),
        ("patch", GROUP, PLURAL),
        ("patch", GROUP, PLURAL + "/status"),
        ("list", GROUP, ANALYSIS_RUNS),
    }
)
"""The RBAC the canary needs (deploy/kubernetes/rbac.yaml grants them)."""
_DURATION = re.compile(r"(\d+)(s|m|h)?")


def parse_duration(value: object) -> int | None:
    """A pause step's duration in seconds (`30`, `"30s"`, `"5m"`, `"1h"`); None: indefinite."""
    if value is None or value == "":
        return None
    match = _DURATION.fullmatch(str(value).strip())
    if match is None:
        return None
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


@dataclass(frozen=True)
class CanaryStep:
    kind: str
    """`setWeight`, `pause`, `analysis`, or the step's own key for others (e.g. `experiment`)."""
    weight: int | None = None
    pause_seconds: int | None = None
    """A pause's duration; None with kind `pause`: until someone promotes."""

    def describe(self) -> str:
        if self.kind == "setWeight":
            return f"setWeight {self.weight}%"
        if self.kind == "pause":
            return "pause" + (
                f" {_seconds(self.pause_seconds)}" if self.pause_seconds else " (until promoted)"
            )
        return self.kind


@dataclass(frozen=True)
class AnalysisRun:
    name: str
    phase: str
    message: str = ""


@dataclass(frozen=True)
class CanaryState:
    """One read of a Rollout, as `kubectl argo rollouts get rollout` presents it."""

    name: str
    phase: str
    message: str
    steps: tuple[CanaryStep, ...]
    step_index: int
    set_weight: int
    actual_weight: int
    paused: bool
    pause_reasons: tuple[str, ...]
    pause_started: str
    aborted: bool
    promote_full: bool
    revision: str
    images: dict[str, str]
    analysis: tuple[AnalysisRun, ...] = ()
    resource_version: str = ""
    paused_by_forgebot: str = ""
    generation: str = ""
    promoting: bool = False
    """A pause was ended (promote) and the controller has not moved on yet."""

    @property
    def current_step(self) -> CanaryStep | None:
        return self.steps[self.step_index] if self.step_index < len(self.steps) else None

    @property
    def failed_analysis(self) -> AnalysisRun | None:
        return next((a for a in self.analysis if a.phase in ("Failed", "Error")), None)


@dataclass(frozen=True)
class CanaryStatus(RolloutStatus):
    """A followed Rollout: the replica figures the rollout bar shows, and the canary."""

    canary: CanaryState | None = field(default=None)


def _seconds(value: int | None) -> str:
    if not value:
        return "0s"
    if value % 3600 == 0:
        return f"{value // 3600}h"
    if value % 60 == 0:
        return f"{value // 60}m"
    return f"{value}s"


def steps_of(rollout: dict[str, Any]) -> tuple[CanaryStep, ...]:
    canary = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    found = []
    for step in canary.get("steps") or []:
        if "setWeight" in step:
            found.append(CanaryStep("setWeight", weight=int(step["setWeight"])))
        elif "pause" in step:
            found.append(
                CanaryStep(
                    "pause", pause_seconds=parse_duration((step["pause"] or {}).get("duration"))
                )
            )
        elif "analysis" in step:
            found.append(CanaryStep("analysis"))
        else:
            found.append(CanaryStep(next(iter(step), "step")))
    return tuple(found)


def canary_state(rollout: dict[str, Any], runs: list[dict[str, Any]]) -> CanaryState:
    meta, spec = rollout.get("metadata") or {}, rollout.get("spec") or {}
    status = rollout.get("status") or {}
    steps = steps_of(rollout)
    index = int(status.get("currentStepIndex") or 0) if steps else 0
    set_weight = 100 if index >= len(steps) else 0
    for step in steps[: index + 1 if index < len(steps) else len(steps)]:
        if step.kind == "setWeight" and index < len(steps):
            set_weight = step.weight or 0
    weights = ((status.get("canary") or {}).get("weights") or {}).get("canary") or {}
    replicas = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    if weights.get("weight") is not None:
        actual = int(weights["weight"])
    elif status.get("stableRS") and status.get("stableRS") == status.get("currentPodHash"):
        actual = 100
    else:
        updated = int(status.get("updatedReplicas") or 0)
        actual = 0 if replicas == 0 else math.floor(updated * 100 / replicas)
    pauses = status.get("pauseConditions") or []
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    owned = [
        r
        for r in runs
        if any(
            o.get("uid") == meta.get("uid")
            for o in (r.get("metadata") or {}).get("ownerReferences") or []
        )
        and ((r.get("metadata") or {}).get("labels") or {}).get("rollouts-pod-template-hash")
        in (status.get("currentPodHash"), None)
    ]
    owned.sort(key=lambda r: str((r.get("metadata") or {}).get("creationTimestamp") or ""))
    analysis = tuple(
        AnalysisRun(
            str((r.get("metadata") or {}).get("name") or ""),
            str((r.get("status") or {}).get("phase") or "Pending"),
            str((r.get("status") or {}).get("message") or ""),
        )
        for r in owned[-5:]
    )
    return CanaryState(
        name=str(meta.get("name") or ""),
        phase=str(status.get("phase") or "Progressing"),
        message=str(status.get("message") or ""),
        steps=steps,
        step_index=index,
        set_weight=set_weight,
        actual_weight=actual,
        paused=bool(spec.get("paused")) or bool(pauses),
        pause_reasons=tuple(str(p.get("reason") or "") for p in pauses)
        + (("PausedByUser",) if spec.get("paused") and not pauses else ()),
        pause_started=str(pauses[0].get("startTime") or "") if pauses else "",
        aborted=bool(status.get("abort")),
        promote_full=bool(status.get("promoteFull")),
        revision=str((meta.get("annotations") or {}).get(REVISION) or ""),
        images={str(c.get("name")): str(c.get("image") or "") for c in containers},
        analysis=analysis,
        resource_version=str(meta.get("resourceVersion") or ""),
        paused_by_forgebot=str((meta.get("annotations") or {}).get(PAUSED_BY) or ""),
        generation=str(meta.get("generation") or ""),
        promoting=bool(status.get("controllerPause")) and not pauses,
    )


def judge(rollout: dict[str, Any], runs: list[dict[str, Any]]) -> CanaryStatus:
    """The follow loop's verdict on one read (see the module's docstring)."""
    state = canary_state(rollout, runs)
    meta, spec = rollout.get("metadata") or {}, rollout.get("spec") or {}
    status = rollout.get("status") or {}
    replicas = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    updated, ready, available = (
        int(status.get("updatedReplicas") or 0),
        int(status.get("readyReplicas") or 0),
        int(status.get("availableReplicas") or 0),
    )
    observed = str(status.get("observedGeneration") or "") == str(meta.get("generation") or "")
    stable = bool(status.get("stableRS")) and status.get("stableRS") == status.get("currentPodHash")
    failed = state.aborted or state.phase == "Degraded"
    reason = ""
    if failed:
        run = (status.get("canary") or {}).get("currentStepAnalysisRunStatus") or {}
        reason = state.message or "the canary was aborted"
        message = str(run.get("message") or "")
        if run.get("status") in ("Failed", "Error") and message and message not in reason:
            reason += f" (analysis {run.get('name')}: {message})"
    done = not failed and observed and stable and state.phase == "Healthy"
    return CanaryStatus(
        replicas,
        updated if not done else replicas,
        ready,
        available,
        done,
        failed,
        reason,
        # Paused, or an analysis running on its own schedule: the canary's pace, not a stall.
        waiting=(state.paused or any(a.phase == "Running" for a in state.analysis)) and not failed,
        canary=state,
    )


@dataclass
class RolloutsApi:
    """The Rollout kind through the gateway (its thread pool, concurrency and error mapping)."""

    kube: KubeGateway

    def _read(self, api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
        response: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            _request_timeout=TIMEOUT,
            _preload_content=False,
        )
        found: dict[str, Any] = json.loads(response.data)
        return found

    async def get(self, cluster: str, namespace: str, name: str) -> dict[str, Any]:
        return await self.kube._call(
            cluster,
            "get",
            f"rollout {name} in {namespace}",
            lambda api: self._read(api, namespace, name),
        )

    async def status(self, cluster: str, namespace: str, name: str) -> CanaryStatus:
        def read(api: client.ApiClient) -> CanaryStatus:
            found = self._read(api, namespace, name)
            response: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                ANALYSIS_RUNS,
                _request_timeout=TIMEOUT,
                _preload_content=False,
            )
            runs: list[dict[str, Any]] = json.loads(response.data).get("items") or []
            return judge(found, runs)

        return await self.kube._call(cluster, "get", f"rollout {name} in {namespace}", read)

    async def facts(self, cluster: str, namespace: str, name: str) -> DeploymentFacts:
        found = await self.get(cluster, namespace, name)
        meta, spec = found.get("metadata") or {}, found.get("spec") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        annotations = dict(meta.get("annotations") or {})
        return DeploymentFacts(
            labels=dict(meta.get("labels") or {}),
            annotations=annotations,
            images={c["name"]: c.get("image") or "" for c in containers},
            revision=int(annotations.get(REVISION, "0") or 0),
            replicas=int(spec["replicas"]) if spec.get("replicas") is not None else 1,
            autoscalers=[],
        )

    async def _patch(
        self, cluster: str, namespace: str, name: str, body: dict[str, Any], *, status: bool
    ) -> None:
        def write(api: client.ApiClient) -> None:
            objects = client.CustomObjectsApi(api)
            call = (
                objects.patch_namespaced_custom_object_status
                if status
                else objects.patch_namespaced_custom_object
            )
            call(GROUP, VERSION, namespace, PLURAL, name, body, _request_timeout=TIMEOUT)

        await self.kube._call(cluster, "update", f"rollout {name} in {namespace}", write)

    async def set_image(
        self, cluster: str, namespace: str, name: str, container: str, image: str
    ) -> bool:
        """Point one container of the Rollout's pod template at `image` (a JSON patch that
        tests the container's name and the resourceVersion read). False when it already runs it."""
        found = await self.get(cluster, namespace, name)
        containers = (((found.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or []
        names = [str(c.get("name")) for c in containers]
        if container not in names:
            raise NotFound(
                f"rollout {name} in {namespace} has no container {container} "
                f"(it has {', '.join(names)}); fix the catalog's workload entry"
            )
        index = names.index(container)
        if containers[index].get("image") == image:
            return False
        rv = str(found["metadata"].get("resourceVersion") or "")
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {
                "op": "test",
                "path": f"/spec/template/spec/containers/{index}/name",
                "value": container,
            },
            {
                "op": "replace",
                "path": f"/spec/template/spec/containers/{index}/image",
                "value": image,
            },
        ]

        await self._json_patch(cluster, namespace, name, patch)
        return True

    async def replace_template(
        self,
        cluster: str,
        namespace: str,
        name: str,
        found: dict[str, Any],
        template: dict[str, Any],
    ) -> None:
        """Put `template` on the Rollout read as `found` (refused if it changed since)."""
        patch: list[dict[str, Any]] = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": str(found["metadata"].get("resourceVersion") or ""),
            },
            {"op": "replace", "path": "/spec/template", "value": template},
        ]
        await self._json_patch(cluster, namespace, name, patch)

    async def _json_patch(
        self, cluster: str, namespace: str, name: str, patch: list[dict[str, Any]]
    ) -> None:
        def write(api: client.ApiClient) -> None:
            client.CustomObjectsApi(api).patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
                _content_type="application/json-patch+json",
                _request_timeout=TIMEOUT,
            )

        await self.kube._call(cluster, "update", f"rollout {name} in {namespace}", write)

    async def promote(self, cluster: str, namespace: str, name: str, expect_step: int) -> str:
        """`kubectl argo rollouts promote`: end the current pause (or, with nothing paused,
        skip the running step). Refused when the canary is no longer at `expect_step`."""
        found = await self.get(cluster, namespace, name)
        state = canary_state(found, [])
        _expect(state, expect_step)
        if state.aborted:
            raise Conflict(f"The canary of {name} was aborted: retry it first.")
        if state.promoting:
            raise Conflict(f"The canary of {name} was just promoted; it is moving on.")
        pauses = (found.get("status") or {}).get("pauseConditions") or []
        if (found.get("spec") or {}).get("paused"):
            await self._patch(
                cluster,
                namespace,
                name,
                {"metadata": {"annotations": {PAUSED_BY: None}}, "spec": {"paused": False}},
                status=False,
            )
        if pauses:
            await self._patch(
                cluster, namespace, name, {"status": {"pauseConditions": None}}, status=True
            )
            return "paused step ended"
        if (found.get("spec") or {}).get("paused"):
            return "resumed"
        if state.step_index >= len(state.steps):
            raise Conflict(f"The canary of {name} has no step left to promote.")
        await self._patch(
            cluster,
            namespace,
            name,
            {"status": {"currentStepIndex": state.step_index + 1}},
            status=True,
        )
        return "step skipped"

    async def promote_full(self, cluster: str, namespace: str, name: str) -> None:
        found = await self.get(cluster, namespace, name)
        if canary_state(found, []).aborted:
            raise Conflict(f"The canary of {name} was aborted: retry it first.")
        if (found.get("spec") or {}).get("paused"):
            await self._patch(
                cluster,
                namespace,
                name,
                {"metadata": {"annotations": {PAUSED_BY: None}}, "spec": {"paused": False}},
                status=False,
            )
        await self._patch(cluster, namespace, name, {"status": {"promoteFull": True}}, status=True)

    async def abort(self, cluster: str, namespace: str, name: str) -> None:
        await self._patch(cluster, namespace, name, {"status": {"abort": True}}, status=True)

    async def retry(self, cluster: str, namespace: str, name: str) -> None:
        found = await self.get(cluster, namespace, name)
        if not canary_state(found, []).aborted:
            raise Conflict(f"The canary of {name} is not aborted: there is nothing to retry.")
        await self._patch(cluster, namespace, name, {"status": {"abort": False}}, status=True)

    async def pause(self, cluster: str, namespace: str, name: str, why: str) -> bool:
        """`kubectl argo rollouts pause`, saying why on the Rollout. False if already paused."""
        found = await self.get(cluster, namespace, name)
        if (found.get("spec") or {}).get("paused"):
            return False
        await self._patch(
            cluster,
            namespace,
            name,
            {"metadata": {"annotations": {PAUSED_BY: why[:500]}}, "spec": {"paused": True}},
            status=False,
        )
        return True


def _expect(state: CanaryState, step: int) -> None:
    if state.step_index != step:
        raise Conflict(
            f"The canary of {state.name} is no longer at step {step + 1} "
            f"(it is at step {min(state.step_index, len(state.steps)) + 1 if state.step_index < len(state.steps) else 'the end'}): "
            "someone promoted it already. Look at the message again."
        )
