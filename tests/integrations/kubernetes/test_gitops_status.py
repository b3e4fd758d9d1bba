"""How forgebot judges a commit from Argo CD's and Flux's status fields (as the controllers
document them), and reads them through the fake API's custom resources."""

from __future__ import annotations

from typing import Any

from core.catalog_gitops import GitOpsController
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.gitops import argocd_status, controller_status, flux_status
from integrations.sandbox.kube_api import KINDS, FakeKube

COMMIT = "4f1c2b9d8e7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
OLD = "0123456789abcdef0123456789abcdef01234567"


def _app(
    sync: str, revision: str, health: str, phase: str = "", message: str = ""
) -> dict[str, Any]:
    return {
        "status": {
            "sync": {"status": sync, "revision": revision},
            "health": {"status": health},
            "operationState": {
                "phase": phase,
                "message": message,
                "syncResult": {"revision": COMMIT},
            },
        }
    }


def test_argo_cd_is_done_only_when_synced_and_healthy_at_the_commit() -> None:
    assert not argocd_status(_app("Synced", OLD, "Healthy"), COMMIT).applied, "an older commit"
    progressing = argocd_status(_app("OutOfSync", OLD, "Progressing", "Running"), COMMIT)
    assert not progressing.applied and not progressing.failed
    assert progressing.summary == "OutOfSync, Progressing, sync Running"
    assert not argocd_status(_app("Synced", COMMIT, "Progressing"), COMMIT).applied
    assert argocd_status(_app("Synced", COMMIT, "Healthy", "Succeeded"), COMMIT).applied


def test_argo_cd_failures_carry_its_own_message() -> None:
    failed = argocd_status(
        _app("OutOfSync", OLD, "Healthy", "Failed", "one or more objects failed to apply"),
        COMMIT,
    )
    assert failed.failed and failed.message == "one or more objects failed to apply"
    degraded = argocd_status(_app("Synced", COMMIT, "Degraded"), COMMIT)
    assert degraded.failed


def _flux(
    ready: str, reason: str, applied: str, attempted: str, message: str = ""
) -> dict[str, Any]:
    return {
        "metadata": {"generation": 3},
        "status": {
            "observedGeneration": 3,
            "lastAppliedRevision": applied,
            "lastAttemptedRevision": attempted,
            "conditions": [
                {"type": "Ready", "status": ready, "reason": reason, "message": message}
            ],
        },
    }


def test_flux_is_done_when_ready_with_the_commit_applied() -> None:
    old, new = f"main@sha1:{OLD}", f"main@sha1:{COMMIT}"
    assert not flux_status(_flux("True", "ReconciliationSucceeded", old, old), COMMIT).applied
    assert not flux_status(_flux("Unknown", "Progressing", old, new), COMMIT).applied
    assert flux_status(_flux("True", "ReconciliationSucceeded", new, new), COMMIT).applied
    assert flux_status(
        _flux("True", "ReconciliationSucceeded", f"main/{COMMIT}", ""), COMMIT
    ).applied
    helm = flux_status(_flux("True", "UpgradeSucceeded", f"0.3.0+{COMMIT[:12]}", ""), COMMIT)
    assert helm.applied, "a chart version carrying the commit as build metadata"


def test_flux_failure_is_for_an_attempt_at_the_commit_only() -> None:
    new = f"main@sha1:{COMMIT}"
    failed = flux_status(
        _flux("False", "HealthCheckFailed", "", new, "timeout waiting for: [Deployment/x]"), COMMIT
    )
    assert failed.failed and "timeout waiting" in failed.message
    earlier = flux_status(_flux("False", "BuildFailed", "", f"main@sha1:{OLD}"), COMMIT)
    assert not earlier.failed, "an older commit's failure is not this deploy's"


async def test_the_status_is_read_as_a_custom_object(
    kube: KubeGateway, fake_kube: FakeKube
) -> None:
    applications = next(k for k in KINDS if k.plural == "applications")
    fake_kube.seed_namespace("argocd")
    fake_kube.create(
        applications,
        "argocd",
        {"metadata": {"name": "checkout"}, "spec": {}, **_app("Synced", COMMIT, "Healthy")},
    )
    status = await controller_status(
        kube, "dev-cluster", GitOpsController(kind="argocd", name="checkout"), COMMIT
    )
    assert status.applied


def test_sync_windows_match_by_application_namespace_or_cluster() -> None:
    from integrations.kubernetes.gitops import windows_for

    app = {
        "metadata": {"name": "checkout-prod"},
        "spec": {"destination": {"namespace": "checkout", "server": "https://prod"}},
    }
    project = {
        "spec": {
            "syncWindows": [
                {
                    "kind": "deny",
                    "schedule": "0 22 * * *",
                    "duration": "8h",
                    "applications": ["*-prod"],
                },
                {
                    "kind": "allow",
                    "schedule": "0 9 * * *",
                    "duration": "1h",
                    "namespaces": ["ledger"],
                },
                {
                    "kind": "deny",
                    "schedule": "0 0 * * 6",
                    "duration": "48h",
                    "clusters": ["https://prod"],
                    "manualSync": True,
                },
            ]
        }
    }
    found = [w.describe() for w in windows_for(app, project)]
    assert found == [
        "deny `0 22 * * *` UTC for 8h",
        "deny `0 0 * * 6` UTC for 48h, manual syncs allowed",
    ]
