"""Off-hours with Argo CD: the automated sync of Applications deploying into a sleeping
namespace is paused before it sleeps (or self-heal would scale it back up) and put back exactly
when it wakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from integrations.kubernetes.argocd_autosync import ORIGINAL
from integrations.sandbox.kube_api import KINDS
from tests.commands.offhours.conftest import ENV, Harness, replicas

SHUTDOWN = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 19:00 in Berlin
WAKE = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 08:00 in Berlin, Wednesday
APPLICATIONS = next(k for k in KINDS if k.plural == "applications")
AUTOMATED = {"prune": True, "selfHeal": True, "allowEmpty": False}


def _app(h: Harness, name: str) -> dict[str, Any]:
    return h.kube.get(APPLICATIONS, "argocd", name)


async def test_auto_sync_is_paused_while_asleep_and_restored_exactly(h: Harness) -> None:
    await h.add_environment()
    h.kube.seed_namespace("argocd")
    for name, namespace, policy in (
        ("web", ENV, {"automated": AUTOMATED}),
        ("manual", ENV, {}),
        ("elsewhere", "other", {"automated": AUTOMATED}),
    ):
        h.kube.create(
            APPLICATIONS,
            "argocd",
            {
                "metadata": {"name": name},
                "spec": {"destination": {"namespace": namespace}, "syncPolicy": policy},
            },
        )

    h.at(SHUTDOWN)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept" and not outcome.failures
    assert replicas(h.kube)["web"] == 0
    web = _app(h, "web")
    assert "automated" not in web["spec"]["syncPolicy"], "self-heal would undo the shutdown"
    assert json.loads(web["metadata"]["annotations"][ORIGINAL]) == AUTOMATED
    assert _app(h, "manual")["spec"]["syncPolicy"] == {}, "no automated sync: left alone"
    assert _app(h, "elsewhere")["spec"]["syncPolicy"] == {"automated": AUTOMATED}

    h.at(WAKE)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "woke" and not outcome.failures
    web = _app(h, "web")
    assert web["spec"]["syncPolicy"] == {"automated": AUTOMATED}, "exactly as it was"
    assert ORIGINAL not in (web["metadata"].get("annotations") or {})
