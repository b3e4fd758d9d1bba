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


def test_a_deadline_exceeded_before_the_controller_observed_the_change_is_the_old_rollouts() -> (
    None
):
    timed_out = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "checkout-5d4f" has timed out progressing.',
    }
    # Right after a rollback patch: generation 2, the status still about generation 1.
    stale = _deployment(observedGeneration=1, replicas=2, updatedReplicas=1, conditions=[timed_out])
    status = status_of(stale, [])
    assert not status.failed and not status.done
    observed = _deployment(
        observedGeneration=2, replicas=2, updatedReplicas=1, conditions=[timed_out]
    )
    assert status_of(observed, []).failed
