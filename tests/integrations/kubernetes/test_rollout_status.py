"""`status_of` judges a Deployment's status as `kubectl rollout status` does."""

from __future__ import annotations

from typing import Any

from integrations.kubernetes.rollout import status_of


def _deployment(**status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": status}


def test_done_only_when_every_replica_is_updated_available_and_no_old_pod_remains() -> None:
    settled = {"observedGeneration": 2, "updatedReplicas": 2, "readyReplicas": 2}
    assert status_of(_deployment(replicas=2, availableReplicas=2, **settled), []).done
    # An old pod that never became ready is still there: kubectl says "1 old replicas are
    # pending termination", so this is not done.
    assert not status_of(_deployment(replicas=3, availableReplicas=2, **settled), []).done
    stale = {**settled, "observedGeneration": 1}
    assert not status_of(_deployment(replicas=2, availableReplicas=2, **stale), []).done
