"""`/deploy` and **Roll back now** end to end against both the sandbox fake and a real
kube-apiserver with its Deployment controller (and the fake kubelet): the image patch, the
rollout followed to the end, a broken image failing on its progress deadline with the pods'
reason, and the rollback to what ran before."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bot.runtime import Runtime
from commands.deploy import views
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from tests.bot_harness import running_bot_harness
from tests.commands.deploy.test_deploy import ELSEWHERE, IMAGE, DeployHarness, _text
from tests.fixtures.kube_contract import Backend, eventually
from tests.fixtures.slack import ONCALL

NAMESPACE = "checkout-staging"  # where the example catalog runs checkout in staging


def _fresh_checkout(backend: Backend) -> None:
    """checkout 1.4.1 with a 3 s progress deadline, replacing any earlier test's."""
    core, apps = client.CoreV1Api(backend.admin), client.AppsV1Api(backend.admin)
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as exc:
        assert exc.status == 409
    try:
        apps.delete_namespaced_deployment("checkout", NAMESPACE, propagation_policy="Foreground")
    except ApiException as exc:
        assert exc.status == 404
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            apps.read_namespaced_deployment("checkout", NAMESPACE)
        except ApiException as exc:
            assert exc.status == 404
            break
        time.sleep(0.2)
    backend.deployment(NAMESPACE, "checkout", f"{IMAGE}:1.4.1", replicas=2, deadline=3)


@pytest.fixture
async def harness(
    backend: Backend,
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
) -> AsyncIterator[DeployHarness]:
    def prepare(runtime: Runtime) -> None:
        assert runtime.ctx is not None
        runtime.ctx.rollouts.poll_seconds = 0.1

    _fresh_checkout(backend)
    await eventually(  # the starting point: 1.4.1 rolled out
        lambda: _ready(backend), lambda ready: ready == 2
    )
    async with running_bot_harness(
        DeployHarness,
        bot_settings,
        catalog,
        fake_slack,
        fake_kube,
        backend.kubeconfig,
        prepare=prepare,
    ) as harness:
        yield harness


async def _ready(backend: Backend) -> int:
    found = backend.read(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/checkout")
    return int((found.get("status") or {}).get("availableReplicas") or 0)


def _image(backend: Backend) -> str:
    found = backend.read(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/checkout")
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


async def _finished(harness: DeployHarness, count: int) -> list[tuple[str, str, str, str, str]]:
    return await eventually(
        lambda: harness.records("staging"),
        lambda rows: len([r for r in rows if r[3] != "in_progress"]) >= count,
    )


async def test_deploy_broken_image_and_roll_back_now(
    backend: Backend, harness: DeployHarness
) -> None:
    reply = await harness.deploy(ELSEWHERE, "checkout 1.4.2 to staging")
    assert "Deploying checkout `1.4.2` to staging" in reply["text"]
    records = await _finished(harness, 1)
    assert records == [("deploy", "1.4.2", "1.4.1", "succeeded", "U0DEVELOPER")]
    assert _image(backend) == f"{IMAGE}:1.4.2"
    assert await _ready(backend) == 2

    await harness.deploy(ELSEWHERE, "checkout broken to staging")
    records = await _finished(harness, 2)
    assert records[0][:4] == ("deploy", "broken", "1.4.2", "failed")

    def failed_message(calls: Any) -> list[Any]:
        return [
            c
            for c in calls
            if c.method == "chat.update" and "ImagePullBackOff" in _text(c.args.get("blocks"))
        ]

    await harness.slack.state.until(failed_message, timeout=30)
    message = next(
        m
        for m in harness.slack.state.messages_in("C0RANDOM").values()
        if "ImagePullBackOff" in _text(m)
    )
    button = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"])
    assert button["action_id"] == views.ROLLBACK_CONFIRM

    await harness.press_button(ONCALL, button, ts=str(message["ts"]))
    records = await _finished(harness, 3)
    assert [r[:4] for r in records[:2]] == [
        ("rollback", "1.4.2", "broken", "succeeded"),
        ("deploy", "broken", "1.4.2", "failed"),
    ]
    assert _image(backend) == f"{IMAGE}:1.4.2", "what ran before the broken deploy"
    await eventually(lambda: _ready(backend), lambda ready: ready == 2)
