"""A rollout's state as `kubectl rollout status` judges it, and `rollout undo`'s template.

Done when the controller has observed the new generation and every replica is updated, ready
and available; failed when the `Progressing` condition says `ProgressDeadlineExceeded` (the
reason comes from the pods' container states) or when our own timeout passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    @property
    def fraction(self) -> float:
        return (
            1.0
            if self.replicas == 0
            else min(self.updated, self.ready, self.available) / self.replicas
        )


def status_of(deployment: Any, pods: list[Any]) -> RolloutStatus:
    spec_replicas = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    status = deployment.status
    observed = (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
    updated, ready, available = (
        status.updated_replicas or 0,
        status.ready_replicas or 0,
        status.available_replicas or 0,
    )
    conditions = {c.type: c for c in status.conditions or []}
    progressing = conditions.get("Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return RolloutStatus(
            spec_replicas,
            updated,
            ready,
            available,
            False,
            True,
            _pod_reason(pods) or progressing.message or "",
        )
    done = observed and updated == ready == available == spec_replicas
    return RolloutStatus(spec_replicas, updated, ready, available, done, False)


def _pod_reason(pods: list[Any]) -> str:
    for pod in pods:
        for container in pod.status.container_statuses or []:
            waiting = container.state.waiting if container.state else None
            if waiting is not None and waiting.reason not in (
                None,
                "ContainerCreating",
                "PodInitializing",
            ):
                return f"{pod.metadata.name}: {waiting.reason}: {waiting.message or ''}".strip(": ")
    return ""


def rollback_template(replica_set_template: Any, api: client.ApiClient) -> dict[str, Any]:
    """`kubectl rollout undo`: the old ReplicaSet's pod template without `pod-template-hash`."""
    template: dict[str, Any] = api.sanitize_for_serialization(replica_set_template)  # type: ignore[no-untyped-call]
    labels = dict(template.get("metadata", {}).get("labels") or {})
    labels.pop("pod-template-hash", None)
    template.setdefault("metadata", {})["labels"] = labels
    return template
