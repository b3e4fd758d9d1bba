"""A simulator of Argo CD and Flux for the sandbox and the tests: NOT a GitOps controller.

For every catalog workload with `delivery: gitops` it keeps the controller's custom object
(an Argo CD `Application`, a Flux `Kustomization` or `HelmRelease`) in the fake Kubernetes API,
and on each `step`:

1. reads the branch's tip and the version field from the real Git server (with dulwich, as the
   bot does), and when the tip is new, reports it as being applied (`OutOfSync`/`Progressing`,
   an operation `Running`; Flux: `Ready=Unknown`), then "applies" it: the field's image is set
   on the workload's Deployment in the fake API, whose deployment controller rolls it out;
2. once that rollout is done, reports the commit applied and healthy (`Synced`/`Healthy`,
   operation `Succeeded` with `syncResult.revision`; Flux: `Ready=True`, `lastAppliedRevision`
   `main@sha1:<commit>`); a rollout past its deadline reports `Degraded` (Flux: `Ready=False`,
   `HealthCheckFailed`) with the deployment's message.

`fail_next(message)` makes the next new commit fail to sync with that message, as a controller
reports a manifest the cluster refuses. Real controllers render Kustomize and Helm; this one
only reads the one field the catalog names, which is all the bot's deploy relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from core.catalog import Catalog, Service, Workload
from core.catalog_gitops import GitOpsTarget
from integrations.git.repository import DesiredStateRepo, Identity
from integrations.sandbox.kube_api import KINDS, ApiError, FakeKube, Kind

_KIND = {
    "argocd": next(k for k in KINDS if k.plural == "applications"),
    "flux-kustomization": next(k for k in KINDS if k.plural == "kustomizations"),
    "flux-helmrelease": next(k for k in KINDS if k.plural == "helmreleases"),
}
log = logging.getLogger(__name__)
_DEPLOYMENTS = next(k for k in KINDS if k.plural == "deployments")
_MERGE = "application/merge-patch+json"


@dataclass
class _Tracked:
    service: Service
    workload: Workload
    target: GitOpsTarget
    applying: str = ""
    applied: str = ""


@dataclass
class GitOpsSimulator:
    fake: FakeKube
    catalog: Catalog
    token: str | None
    interval: float = 0.02
    steps: int = 0
    _tracked: list[_Tracked] = field(default_factory=list)
    _fail_next: str = ""
    _task: asyncio.Task[None] | None = None

    def install(self) -> None:
        """Create the controllers' objects (and their namespaces), as the platform team would."""
        for service in self.catalog.services:
            for workload in service.workloads.values():
                target = workload.gitops
                if target is None:
                    continue
                tracked = _Tracked(service, workload, target)
                self._tracked.append(tracked)
                kind = _KIND[target.controller.kind]
                self.fake.seed_namespace(target.controller.where)
                with contextlib.suppress(ApiError):
                    self.fake.create(kind, target.controller.where, self._manifest(target))
                # What the branch holds now is what runs (the sandbox seeds it so): applied.
                _, tracked.applied = self._repo(target).read(target.file, target.field)
                self._report(tracked, tracked.applied, "healthy", "")

    @staticmethod
    def _manifest(target: GitOpsTarget) -> dict[str, Any]:
        directory = target.file.rsplit("/", 1)[0] if "/" in target.file else "."
        if target.controller.kind == "argocd":
            spec: dict[str, Any] = {
                "project": "default",
                "source": {
                    "repoURL": target.repository,
                    "targetRevision": target.branch,
                    "path": directory,
                },
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
            }
        else:
            spec = {"interval": "1m", "path": directory, "sourceRef": {"kind": "GitRepository"}}
        return {"metadata": {"name": target.controller.name}, "spec": spec}

    def _repo(self, target: GitOpsTarget) -> DesiredStateRepo:
        return DesiredStateRepo(
            target.repository, target.branch, self.token, Identity("simulator", "sim@invalid")
        )

    def fail_next(self, message: str) -> None:
        self._fail_next = message

    # --- the loop --------------------------------------------------------------------------
    def step(self) -> None:
        self.steps += 1
        for tracked in self._tracked:
            self._step_one(tracked)

    def _step_one(self, tracked: _Tracked) -> None:
        target = tracked.target
        value, tip = self._repo(target).read(target.file, target.field)
        if tip not in (tracked.applying, tracked.applied):
            tracked.applying = tip
            if self._fail_next:
                message, self._fail_next = self._fail_next, ""
                self._report(tracked, tip, "failed", message)
                tracked.applying, tracked.applied = "", tip
                return
            self._report(tracked, tip, "progressing", "")
            self._apply(tracked, value)
            return
        if tracked.applying:
            state, message = self._rollout(tracked.workload)
            if state == "progressing":
                return
            self._report(tracked, tip, state, message)
            tracked.applying, tracked.applied = "", tip

    def _apply(self, tracked: _Tracked, value: str) -> None:
        workload, target = tracked.workload, tracked.target
        if target.field.kind == "yaml-path":
            image = value
        else:
            sep = "@" if value.startswith("sha256:") else ":"
            image = f"{tracked.service.image}{sep}{value}"
        self.fake.patch(
            _DEPLOYMENTS,
            workload.namespace,
            workload.deployment,
            "application/strategic-merge-patch+json",
            {
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": workload.container, "image": image}]}
                    }
                }
            },
        )

    def _rollout(self, workload: Workload) -> tuple[str, str]:
        found = self.fake.get(_DEPLOYMENTS, workload.namespace, workload.deployment)
        status = found.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        progressing = conditions.get("Progressing") or {}
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return "degraded", str(progressing.get("message") or "")
        replicas = int((found.get("spec") or {}).get("replicas", 1))
        if int(status.get("readyReplicas") or 0) >= replicas and int(
            status.get("observedGeneration") or 0
        ) >= int(found["metadata"].get("generation") or 0):
            return "healthy", ""
        return "progressing", ""

    def _report(self, tracked: _Tracked, commit: str, state: str, message: str) -> None:
        controller = tracked.target.controller
        kind: Kind = _KIND[controller.kind]
        if controller.kind == "argocd":
            sync_status = "OutOfSync" if state in ("progressing", "failed") else "Synced"
            health = {
                "progressing": "Progressing",
                "failed": "Healthy",
                "healthy": "Healthy",
                "degraded": "Degraded",
            }[state]
            phase = {
                "progressing": "Running",
                "failed": "Failed",
                "healthy": "Succeeded",
                "degraded": "Succeeded",
            }[state]
            applied = tracked.applied if state in ("progressing", "failed") else commit
            status: dict[str, Any] = {
                "sync": {"status": sync_status, "revision": applied},
                "health": {"status": health, "message": message if state == "degraded" else ""},
                "operationState": {
                    "phase": phase,
                    "message": message
                    or {
                        "progressing": "waiting for healthy state",
                        "healthy": "successfully synced",
                    }.get(state, ""),
                    "operation": {"sync": {"revision": commit}},
                    "syncResult": {"revision": commit},
                },
            }
        else:
            ready = {
                "progressing": ("Unknown", "Progressing", "Reconciliation in progress"),
                "failed": ("False", "ReconciliationFailed", message),
                "healthy": ("True", "ReconciliationSucceeded", f"Applied revision: {commit}"),
                "degraded": ("False", "HealthCheckFailed", message),
            }[state]
            revision = (
                f"0.3.0+{commit[:12]}"
                if controller.kind == "flux-helmrelease"
                else f"{tracked.target.branch}@sha1:{commit}"
            )
            status = {
                "observedGeneration": 1,
                "lastAttemptedRevision": revision,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": ready[0],
                        "reason": ready[1],
                        "message": ready[2],
                    }
                ],
            }
            if state == "healthy":
                status["lastAppliedRevision"] = revision
        self.fake.patch(kind, controller.where, controller.name, _MERGE, {"status": status})

    # --- running in the background ---------------------------------------------------------
    def start(self) -> None:
        async def loop() -> None:
            while True:
                try:
                    await asyncio.to_thread(self.step)
                except Exception:  # a controller keeps reconciling through errors
                    log.exception("the GitOps simulator's step failed")
                await asyncio.sleep(self.interval)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
