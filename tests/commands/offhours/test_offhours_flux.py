"""Off-hours with Flux: the Kustomizations and HelmReleases behind a sleeping namespace are
suspended before it sleeps (or Flux's next reconciliation would scale it back up) and their
`spec.suspend` is put back exactly when it wakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from integrations.kubernetes.flux_suspend import FOR, ORIGINAL
from integrations.sandbox.kube_api import KINDS
from tests.commands.offhours.conftest import ENV, Harness, replicas

SHUTDOWN = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 19:00 in Berlin
WAKE = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 08:00 in Berlin, Wednesday
KUSTOMIZATIONS = next(k for k in KINDS if k.plural == "kustomizations")
HELMRELEASES = next(k for k in KINDS if k.plural == "helmreleases")
DEPLOYMENTS = next(k for k in KINDS if k.plural == "deployments")


def _labelled(h: Harness, deployment: str, owner: str) -> None:
    h.kube.patch(
        DEPLOYMENTS,
        ENV,
        deployment,
        "application/merge-patch+json",
        {
            "metadata": {
                "labels": {
                    "kustomize.toolkit.fluxcd.io/name": owner,
                    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                }
            }
        },
    )


def _spec(h: Harness, kind: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = h.kube.get(kind, "flux-system", name)
    return found


async def test_flux_is_suspended_while_asleep_and_restored_exactly(h: Harness) -> None:
    await h.add_environment()
    h.kube.seed_namespace("flux-system")
    for kind, name, spec in (
        (KUSTOMIZATIONS, "apps", {"path": "./apps"}),  # owns web; suspend not set
        (KUSTOMIZATIONS, "held", {"path": "./held", "suspend": True}),  # owns api; a person's
        (HELMRELEASES, "cache", {"targetNamespace": ENV, "suspend": False}),
        (KUSTOMIZATIONS, "elsewhere", {"targetNamespace": "other"}),
    ):
        h.kube.create(kind, "flux-system", {"metadata": {"name": name}, "spec": spec})
    _labelled(h, "web", "apps")
    _labelled(h, "api", "held")

    h.at(SHUTDOWN)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept" and not outcome.failures
    assert replicas(h.kube)["web"] == 0
    apps = _spec(h, KUSTOMIZATIONS, "apps")
    assert apps["spec"]["suspend"] is True, "Flux would scale it back up"
    assert json.loads(apps["metadata"]["annotations"][ORIGINAL]) is None
    assert apps["metadata"]["annotations"][FOR] == ENV
    cache = _spec(h, HELMRELEASES, "cache")
    assert cache["spec"]["suspend"] is True
    assert json.loads(cache["metadata"]["annotations"][ORIGINAL]) is False
    held = _spec(h, KUSTOMIZATIONS, "held")
    assert ORIGINAL not in (held["metadata"].get("annotations") or {}), "a person's: left alone"
    assert "suspend" not in _spec(h, KUSTOMIZATIONS, "elsewhere")["spec"]

    h.at(WAKE)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "woke" and not outcome.failures
    apps = _spec(h, KUSTOMIZATIONS, "apps")
    assert apps["spec"] == {"path": "./apps"}, "exactly as it was: suspend not set"
    assert not {ORIGINAL, FOR} & set(apps["metadata"].get("annotations") or {})
    assert _spec(h, HELMRELEASES, "cache")["spec"] == {"targetNamespace": ENV, "suspend": False}
    assert _spec(h, KUSTOMIZATIONS, "held")["spec"]["suspend"] is True, "still the person's"
