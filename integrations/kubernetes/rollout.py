"""A rollout's state as `kubectl rollout status` judges it, and `rollout undo`'s template.

Done when the controller has observed the new generation and every replica is updated, ready
and available, with no old pod left; failed when the `Progressing` condition of the observed
generation says `ProgressDeadlineExceeded` (the reason comes from the pods' container states)
or when our own timeout passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes import client


@dataclass(frozen=True)
class RolloutStatus:
    replicas: int
    updated: int
    ready: int
    available: int
    done: bool
    failed: bool
    reason: str = ""
    waiting: bool = False
    """Paused for a person or for a timed step (a canary): the follow timeout does not run."""

    @property
    def fraction(self) -> float:
        return (
            1.0
            if self.replicas == 0
            else min(self.updated, self.ready, self.available) / self.replicas
        )


def status_of(deployment: dict[str, Any], pods: list[dict[str, Any]]) -> RolloutStatus:
    """From the API's JSON (not the client's models: followed rollouts are read every second,
    and building models costs far more CPU than the JSON itself)."""
    spec, status, meta = (
        deployment.get("spec") or {},
        deployment.get("status") or {},
        deployment.get("metadata") or {},
    )
    spec_replicas = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    updated, ready, available = (
        int(status.get("updatedReplicas") or 0),
        int(status.get("readyReplicas") or 0),
        int(status.get("availableReplicas") or 0),
    )
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing")
    # Until the controller has observed this generation, the conditions describe the previous
    # rollout (a rollback right after a failed deploy still shows its deadline exceeded).
    if (
        observed
        and progressing is not None
        and progressing.get("reason") == "ProgressDeadlineExceeded"
    ):
        return RolloutStatus(
            spec_replicas,
            updated,
            ready,
            available,
            False,
            True,
            _pod_reason(pods) or str(progressing.get("message") or ""),
        )
    # As `kubectl rollout status`: old pods still counted (status.replicas above the updated
    # ones) are "pending termination", so not done yet even when the new ones are all ready.
    total = int(status.get("replicas") or 0)
    done = observed and updated == ready == available == spec_replicas and total <= updated
    return RolloutStatus(spec_replicas, updated, ready, available, done, False)


def _pod_reason(pods: list[dict[str, Any]]) -> str:
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting is not None and waiting.get("reason") not in (
                None,
                "ContainerCreating",
                "PodInitializing",
            ):
                name = (pod.get("metadata") or {}).get("name", "")
                return f"{name}: {waiting.get('reason')}: {waiting.get('message') or ''}".strip(
                    ": "
                )
    return ""


def rollback_template(replica_set_template: Any, api: client.ApiClient) -> dict[str, Any]:
    """`kubectl rollout undo`: the old ReplicaSet's pod template without `pod-template-hash`."""
    template: dict[str, Any] = api.sanitize_for_serialization(replica_set_template)  # type: ignore[no-untyped-call]
    labels = dict(template.get("metadata", {}).get("labels") or {})
    labels.pop("pod-template-hash", None)
    template.setdefault("metadata", {})["labels"] = labels
    return template
