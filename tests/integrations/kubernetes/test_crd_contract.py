"""The GitOps and canary custom resources under contract: Argo Rollouts `Rollout`, Argo CD
`Application` and Flux `Kustomization`/`HelmRelease`, read and patched by the bot (as the
identity deploy/kubernetes gives it) against the sandbox fake and a real kube-apiserver with
the CRDs of tests/fixtures/crds/ installed.

No Argo or Flux controller runs on the real server: the administrator writes the status a
controller would (through the `/status` subresource, the only way the CRDs accept it), and the
assertions are about what forgebot wrote, which the fake's simulated controller leaves as is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client

from integrations.kubernetes.argocd_autosync import ORIGINAL as ARGO_ORIGINAL
from integrations.kubernetes.argocd_autosync import ArgoAutoSync
from integrations.kubernetes.flux_suspend import FOR, ORIGINAL, FluxSuspend
from integrations.kubernetes.rollouts_crd import PAUSED_BY, CanaryStatus
from integrations.kubernetes.workload_kinds import RolloutAwareKube
from tests.fixtures.kube_contract import CLUSTER, CLUSTERS, Backend

STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]


def _objects(backend: Backend) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(backend.admin)


def _get(backend: Backend, group: str, version: str, ns: str, plural: str, name: str) -> Any:
    return _objects(backend).get_namespaced_custom_object(group, version, ns, plural, name)


def _rollout(backend: Backend, ns: str) -> dict[str, Any]:
    found: dict[str, Any] = _get(backend, "argoproj.io", "v1alpha1", ns, "rollouts", "web")
    return found


@pytest.fixture
async def namespace(backend: Backend) -> str:
    return backend.namespace("canary")


@pytest.fixture
async def kube(backend: Backend, namespace: str) -> AsyncIterator[RolloutAwareKube]:
    gateway = RolloutAwareKube(
        CLUSTERS,
        rollouts={(CLUSTER, namespace, "web")},
        kubeconfig=str(backend.kubeconfig),
        concurrency=4,
    )
    yield gateway
    await gateway.close()


def _create_rollout(backend: Backend, ns: str) -> None:
    labels = {"app": "web"}
    _objects(backend).create_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        ns,
        "rollouts",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web", "labels": labels},
            "spec": {
                "replicas": 5,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "app", "image": "registry.example.com/web:1"}]
                    },
                },
                "strategy": {"canary": {"steps": STEPS}},
            },
        },
    )


def _controller_moves_on(backend: Backend, ns: str, step: int) -> None:
    """What the Rollouts controller writes once a pause is promoted: the pause is over and the
    canary is at the next step (the fake's simulator does it on its own)."""
    if backend.fake is None:
        _objects(backend).patch_namespaced_custom_object_status(
            "argoproj.io",
            "v1alpha1",
            ns,
            "rollouts",
            "web",
            {
                "status": {
                    "controllerPause": False,
                    "currentStepIndex": step,
                    "phase": "Progressing",
                }
            },
        )


def _controller_pauses(backend: Backend, ns: str, step: int) -> None:
    """What the Rollouts controller writes at a pause step (the fake's simulator does it)."""
    if backend.fake is not None:
        return
    _objects(backend).patch_namespaced_custom_object_status(
        "argoproj.io",
        "v1alpha1",
        ns,
        "rollouts",
        "web",
        {
            "status": {
                "phase": "Paused",
                "message": "CanaryPauseStep",
                "currentStepIndex": step,
                "currentPodHash": "new",
                "stableRS": "old",
                "controllerPause": True,
                "pauseConditions": [
                    {"reason": "CanaryPauseStep", "startTime": "2026-11-24T10:00:00Z"}
                ],
                "replicas": 5,
                "updatedReplicas": 1,
                "readyReplicas": 5,
                "availableReplicas": 5,
            }
        },
    )


async def test_a_canary_is_read_and_driven_as_the_kubectl_plugin_does(
    backend: Backend, kube: RolloutAwareKube, namespace: str
) -> None:
    _create_rollout(backend, namespace)
    facts = await kube.deployment_facts(CLUSTER, namespace, "web")
    assert facts.images == {"app": "registry.example.com/web:1"}

    assert await kube.set_image(CLUSTER, namespace, "web", "app", "registry.example.com/web:2")
    assert not await kube.set_image(CLUSTER, namespace, "web", "app", "registry.example.com/web:2")
    rollout = _rollout(backend, namespace)
    assert rollout["spec"]["template"]["spec"]["containers"][0]["image"].endswith("web:2")
    assert rollout["spec"]["strategy"]["canary"]["steps"] == STEPS, "only the image changed"

    _controller_pauses(backend, namespace, 1)
    status = await kube.rollout_status(CLUSTER, namespace, "web")
    assert isinstance(status, CanaryStatus) and status.canary is not None
    assert (status.canary.step_index, status.canary.paused, status.waiting) == (1, True, True)
    assert status.canary.set_weight == 20 and not (status.done or status.failed)

    await kube.rollouts.promote(CLUSTER, namespace, "web", 1)
    status_now = _rollout(backend, namespace).get("status") or {}
    if backend.fake is None:
        assert not status_now.get("pauseConditions"), "cleared through the status subresource"
    else:
        assert status_now["currentStepIndex"] == 3, "the simulated controller moved on"
    _controller_moves_on(backend, namespace, 3)

    await kube.rollouts.abort(CLUSTER, namespace, "web")
    assert _rollout(backend, namespace)["status"]["abort"] is True
    assert (await kube.rollout_status(CLUSTER, namespace, "web")).failed
    await kube.rollouts.retry(CLUSTER, namespace, "web")
    assert not _rollout(backend, namespace)["status"].get("abort")

    assert await kube.rollouts.pause(CLUSTER, namespace, "web", "the error budget burns fast")
    rollout = _rollout(backend, namespace)
    assert rollout["spec"]["paused"] is True
    assert rollout["metadata"]["annotations"][PAUSED_BY] == "the error budget burns fast"
    state = (await kube.rollouts.status(CLUSTER, namespace, "web")).canary
    assert state is not None and state.paused_by_forgebot
    await kube.rollouts.promote(CLUSTER, namespace, "web", state.step_index)
    rollout = _rollout(backend, namespace)
    assert rollout["spec"]["paused"] is False
    assert PAUSED_BY not in (rollout["metadata"].get("annotations") or {})


async def test_off_hours_pauses_flux_and_argo_cd_and_restores_them(
    backend: Backend, kube: RolloutAwareKube, namespace: str
) -> None:
    backend.deployment(namespace, "api", "registry.example.com/api:1")
    objects = _objects(backend)
    objects.create_namespaced_custom_object(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        namespace,
        "kustomizations",
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "apps"},
            "spec": {"path": "./apps", "targetNamespace": namespace, "suspend": False},
        },
    )
    automated = {"prune": True, "selfHeal": True}
    objects.create_namespaced_custom_object(
        "argoproj.io",
        "v1alpha1",
        namespace,
        "applications",
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "web"},
            "spec": {
                "destination": {"namespace": namespace},
                "syncPolicy": {"automated": automated},
            },
        },
    )
    flux, argo = FluxSuspend(kube), ArgoAutoSync(kube)
    assert await flux.pause(CLUSTER, namespace) == [f"Flux Kustomization {namespace}/apps"]
    assert await argo.pause(CLUSTER, namespace) == ["web"]
    apps = _get(backend, "kustomize.toolkit.fluxcd.io", "v1", namespace, "kustomizations", "apps")
    assert apps["spec"]["suspend"] is True
    assert json.loads(apps["metadata"]["annotations"][ORIGINAL]) is False
    assert apps["metadata"]["annotations"][FOR] == namespace
    app = _get(backend, "argoproj.io", "v1alpha1", namespace, "applications", "web")
    assert "automated" not in app["spec"]["syncPolicy"]
    assert json.loads(app["metadata"]["annotations"][ARGO_ORIGINAL]) == automated

    assert await argo.resume(CLUSTER, namespace) == ["web"]
    assert await flux.resume(CLUSTER, namespace) == [f"Flux Kustomization {namespace}/apps"]
    apps = _get(backend, "kustomize.toolkit.fluxcd.io", "v1", namespace, "kustomizations", "apps")
    assert apps["spec"] == {"path": "./apps", "targetNamespace": namespace, "suspend": False}
    assert not {ORIGINAL, FOR} & set(apps["metadata"].get("annotations") or {})
    app = _get(backend, "argoproj.io", "v1alpha1", namespace, "applications", "web")
    assert app["spec"]["syncPolicy"] == {"automated": automated}
