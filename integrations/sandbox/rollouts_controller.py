"""A simulator of the Argo Rollouts controller for the fake Kubernetes API (not the controller).

It walks a `Rollout`'s canary steps on the fake's clock, writing the `status` fields forgebot
reads, as the real controller names them:

- a new pod template (a new `currentPodHash`) starts at step 0 with a new revision
  (`rollout.argoproj.io/revision`) and a ReplicaSet owned by the Rollout; the first template
  becomes stable at once (`stableRS`), and so does going back to the stable template (a
  rollback skips the steps, as the real controller's fast track does);
- `setWeight` sets the canary's share (`updatedReplicas`, `status.canary.weights`) and moves on;
- `pause` adds a `CanaryPauseStep` pause condition (`controllerPause: true`, phase `Paused`);
  a timed one ends by itself after its duration, an indefinite one when someone clears the
  pause conditions (promote); `spec.paused: true` holds everything (phase `Paused`);
- `analysis` creates an `AnalysisRun` (owned by the Rollout) that is `Running` for
  `analysis_seconds`, then `Successful`, or `Failed` when the canary's image is in `failing`
  (or its tag ends with `-bad`): a failure aborts the rollout with the controller's message;
- `status.abort` scales the canary back to 0 (phase `Degraded`, `RolloutAborted`) and sends
  the steps back to 0; clearing it (retry) walks them again; `status.promoteFull` skips them;
- after the last step the canary is stable (phase `Healthy`).

Called by `FakeKube` with its lock held, on every write and read of a Rollout.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from integrations.kubernetes.rollouts_crd import REVISION, steps_of

if TYPE_CHECKING:
    from integrations.sandbox.kube_api import FakeKube

ROLLOUTS = ("argoproj.io", "rollouts")


def _hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class RolloutsSimulator:
    analysis_seconds: float = 0.0
    """How long an analysis run stays Running (on the fake's clock)."""
    failing: set[str] = field(default_factory=set)
    """Images whose analysis fails."""
    _runs: dict[tuple[str, str], int] = field(default_factory=dict)

    def reset(self) -> None:
        self.analysis_seconds = 0.0
        self.failing = set()
        self._runs = {}

    # --- the walk ------------------------------------------------------------------------------
    def reconcile(self, fake: FakeKube, namespace: str, name: str) -> None:
        rollout = fake.objects.get(("argoproj.io", "rollouts", namespace, name))
        if rollout is None:
            return
        before = json.dumps(
            [rollout.get("status"), rollout["metadata"].get("annotations")], sort_keys=True
        )
        self._walk(fake, rollout)
        after = json.dumps(
            [rollout.get("status"), rollout["metadata"].get("annotations")], sort_keys=True
        )
        if before != after:
            rollout["metadata"]["resourceVersion"] = str(next(fake._rv))

    def _walk(self, fake: FakeKube, rollout: dict[str, Any]) -> None:
        meta, spec = rollout["metadata"], rollout.get("spec") or {}
        status: dict[str, Any] = rollout.setdefault("status", {})
        template = spec.get("template") or {}
        current = _hash(template)
        steps = steps_of(rollout)
        replicas = int(spec["replicas"]) if spec.get("replicas") is not None else 1
        now = fake.clock.now()
        if status.get("currentPodHash") != current:
            annotations = meta.setdefault("annotations", {})
            revision = int(annotations.get(REVISION, "0") or 0) + 1
            annotations[REVISION] = str(revision)
            self._replica_set(fake, rollout, current, revision)
            status.update(
                currentPodHash=current,
                currentStepIndex=0,
                pauseConditions=None,
                controllerPause=None,
                abort=None,
                promoteFull=None,
                stepStartedAt=fake._now(),
            )
            if status.get("stableRS") in (None, current):
                # The first template, or back to the stable one (a rollback): no steps.
                status["stableRS"] = current
                status["currentStepIndex"] = len(steps)
        status["observedGeneration"] = str(meta.get("generation") or 1)
        status["replicas"] = status["readyReplicas"] = status["availableReplicas"] = replicas
        image = next(
            iter(c.get("image", "") for c in (template.get("spec") or {}).get("containers") or []),
            "",
        )

        def weight(percent: int) -> None:
            status["updatedReplicas"] = -(-replicas * percent // 100)
            status["canary"] = {
                **(status.get("canary") or {}),
                "weights": {
                    "canary": {"weight": percent, "podTemplateHash": current},
                    "stable": {"weight": 100 - percent, "podTemplateHash": status.get("stableRS")},
                },
            }

        if status.get("abort"):
            weight(0)
            status["currentStepIndex"] = 0
            status["pauseConditions"], status["controllerPause"] = None, None
            status["phase"] = "Degraded"
            if not str(status.get("message") or "").startswith("RolloutAborted"):
                status["message"] = (
                    f"RolloutAborted: Rollout aborted update to revision {meta['annotations'][REVISION]}"
                )
            status.setdefault("abortedAt", fake._now())
            return
        if status.pop("abortedAt", None) is not None:
            # Retried: the steps start again, with new analysis runs.
            key = (meta["namespace"], meta["name"])
            self._runs[key] = self._runs.get(key, 0) + 1
            status["message"] = ""
            (status.get("canary") or {}).pop("currentStepAnalysisRunStatus", None)
        if status.get("promoteFull"):
            status["currentStepIndex"] = len(steps)
            status["promoteFull"] = None
            status["pauseConditions"], status["controllerPause"] = None, None
        if spec.get("paused"):
            status["phase"], status["message"] = "Paused", "manually paused"
            return
        index = int(status.get("currentStepIndex") or 0)
        while index < len(steps):
            step = steps[index]
            if step.kind == "setWeight":
                weight(step.weight or 0)
            elif step.kind == "pause":
                pauses = status.get("pauseConditions") or []
                if status.get("controllerPause") and not pauses:
                    status["controllerPause"] = None  # promoted: the pause is over
                elif not pauses:
                    status["pauseConditions"] = [
                        {"reason": "CanaryPauseStep", "startTime": fake._now()}
                    ]
                    status["controllerPause"] = True
                    status["phase"], status["message"] = "Paused", "CanaryPauseStep"
                    status["currentStepIndex"] = index
                    return
                else:
                    started = datetime.fromisoformat(
                        str(pauses[0]["startTime"]).replace("Z", "+00:00")
                    )
                    if (
                        step.pause_seconds is None
                        or (now - started).total_seconds() < step.pause_seconds
                    ):
                        status["phase"], status["message"] = "Paused", "CanaryPauseStep"
                        status["currentStepIndex"] = index
                        return
                    status["pauseConditions"], status["controllerPause"] = None, None
            elif step.kind == "analysis":
                phase = self._analysis(fake, rollout, current, index, image)
                if phase == "Failed":
                    status["abort"] = True
                    run = status["canary"]["currentStepAnalysisRunStatus"]
                    status["message"] = (
                        f"RolloutAborted: Rollout aborted update to revision "
                        f'{meta["annotations"][REVISION]}: Metric "success-rate" assessed Failed '
                        f"due to failed (1) > failureLimit (0) (analysis run {run['name']})"
                    )
                    self._walk(fake, rollout)
                    return
                if phase != "Successful":
                    status["phase"], status["message"] = "Progressing", "waiting for analysis"
                    status["currentStepIndex"] = index
                    return
            index += 1
            status["currentStepIndex"] = index
            status["stepStartedAt"] = fake._now()
        status["currentStepIndex"] = len(steps)
        status["stableRS"] = current
        weight(100)
        status["phase"], status["message"] = "Healthy", ""

    def _analysis(
        self, fake: FakeKube, rollout: dict[str, Any], pod_hash: str, index: int, image: str
    ) -> str:
        meta, status = rollout["metadata"], rollout["status"]
        namespace = meta["namespace"]
        attempt = self._runs.get((namespace, meta["name"]), 0)
        name = f"{meta['name']}-{pod_hash}-{index}-{attempt}"
        key = ("argoproj.io", "analysisruns", namespace, name)
        run = fake.objects.get(key)
        if run is None:
            run = {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "AnalysisRun",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": str(next(fake._rv)),
                    "creationTimestamp": fake._now(),
                    "labels": {"rollouts-pod-template-hash": pod_hash, "step-index": str(index)},
                    "ownerReferences": [
                        {
                            "apiVersion": "argoproj.io/v1alpha1",
                            "kind": "Rollout",
                            "name": meta["name"],
                            "uid": meta["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {"metrics": [{"name": "success-rate"}]},
                "status": {"phase": "Running", "startedAt": fake._now()},
            }
            fake.objects[key] = run
        run_status = run["status"]
        if run_status["phase"] == "Running":
            started = datetime.fromisoformat(str(run_status["startedAt"]).replace("Z", "+00:00"))
            if (fake.clock.now() - started).total_seconds() >= self.analysis_seconds:
                bad = image in self.failing or image.endswith("-bad")
                run_status["phase"] = "Failed" if bad else "Successful"
                run_status["message"] = (
                    'Metric "success-rate" assessed Failed due to failed (1) > failureLimit (0)'
                    if bad
                    else ""
                )
                run["metadata"]["resourceVersion"] = str(next(fake._rv))
        status.setdefault("canary", {})["currentStepAnalysisRunStatus"] = {
            "name": name,
            "status": run_status["phase"],
            "message": run_status.get("message", ""),
        }
        return str(run_status["phase"])

    def _replica_set(
        self, fake: FakeKube, rollout: dict[str, Any], pod_hash: str, revision: int
    ) -> None:
        meta, spec = rollout["metadata"], rollout.get("spec") or {}
        template = json.loads(json.dumps(spec.get("template") or {}))
        labels = {
            **((template.get("metadata") or {}).get("labels") or {}),
            "rollouts-pod-template-hash": pod_hash,
        }
        template.setdefault("metadata", {})["labels"] = labels
        name = f"{meta['name']}-{pod_hash}"
        fake.objects[("apps", "replicasets", meta["namespace"], name)] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": {REVISION: str(revision)},
                "uid": str(uuid.uuid4()),
                "resourceVersion": str(next(fake._rv)),
                "creationTimestamp": fake._now(),
                "ownerReferences": [
                    {
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "Rollout",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {"replicas": int(spec.get("replicas", 1)), "template": template},
            "status": {"replicas": int(spec.get("replicas", 1))},
        }
