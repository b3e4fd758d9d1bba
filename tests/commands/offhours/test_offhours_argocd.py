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


async def test_a_pass_lists_the_applications_once_not_once_per_namespace(h: Harness) -> None:
    # Each namespace asking for the cluster's Applications would cost N lists of N Applications.
    names = [ENV, "pv-second", "pv-third"]
    for name in names:
        await h.add_environment(name)
    h.kube.seed_namespace("argocd")
    for name in names:
        h.kube.create(
            APPLICATIONS,
            "argocd",
            {
                "metadata": {"name": f"app-{name}"},
                "spec": {
                    "destination": {"namespace": name},
                    "syncPolicy": {"automated": AUTOMATED},
                },
            },
        )

    for moment, acted in ((SHUTDOWN, "slept"), (WAKE, "woke")):
        h.at(moment)
        before = len(h.kube.requests)
        outcomes = await h.service.reconcile()
        assert {o.acted for o in outcomes} == {acted}
        assert not [o.failures for o in outcomes if o.failures]
        lists = [
            path
            for method, path, _, _ in h.kube.requests[before:]
            if method == "GET" and path.endswith("/applications")
        ]
        assert lists == ["/apis/argoproj.io/v1alpha1/applications"], lists
        paused = [
            name
            for name in names
            if "automated" not in _app(h, f"app-{name}")["spec"]["syncPolicy"]
        ]
        assert paused == (names if acted == "slept" else [])
    assert _app(h, f"app-{ENV}")["spec"]["syncPolicy"] == {"automated": AUTOMATED}
