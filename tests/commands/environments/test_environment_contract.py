"""Provisioning end to end (signed Slack requests in, the real bot) against both the sandbox fake
and a real kube-apiserver: the objects it makes, the clean-up when a step is refused, and that
it never adopts (or removes) a namespace it did not make."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes import client

from core.catalog import Catalog
from core.config import Settings
from core.errors import NotFound
from integrations.sandbox.kube_api import FakeKube
from integrations.sandbox.slack_api import RunningFakeSlack
from storage.models import EnvState
from tests.bot_harness import running_bot_harness
from tests.commands.environments.test_environment_flow import Harness
from tests.fixtures.kube_contract import Backend, eventually
from tests.fixtures.slack import DEVELOPER


@pytest.fixture
async def harness(
    backend: Backend,
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
) -> AsyncIterator[Harness]:
    async with running_bot_harness(
        Harness, bot_settings, catalog, fake_slack, fake_kube, backend.kubeconfig
    ) as harness:
        yield harness


async def request(harness: Harness, name: str) -> None:
    view = await harness.open_modal(DEVELOPER)
    reply = await harness.submit(
        DEVELOPER, view, template="web-preview", name=name, size="M", ttl="1d"
    )
    assert reply == {} or reply.get("response_action") != "errors", reply
    await harness.idle()


async def test_provisioned_environment_holds_every_object(
    backend: Backend, harness: Harness
) -> None:
    name = backend.unique("c")
    await request(harness, name)
    namespace = f"pv-{name}"
    record = await eventually(
        lambda: harness.record(namespace),
        lambda r: r is not None and r.state in (EnvState.ACTIVE, EnvState.FAILED),
        timeout=60,
    )
    assert record.state == EnvState.ACTIVE, record
    found = backend.read(f"/api/v1/namespaces/{namespace}")
    labels = found["metadata"]["labels"]
    assert labels["forgebot.io/environment"] == namespace
    assert labels["forgebot.io/owner"] == "U0DEVELOPER" and labels["forgebot.io/team"] == "payments"
    assert "forgebot.io/expires-at" in found["metadata"]["annotations"]
    for path in (
        f"/api/v1/namespaces/{namespace}/resourcequotas/forgebot-quota",
        f"/api/v1/namespaces/{namespace}/limitranges/forgebot-defaults",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings/forgebot-team-edit",
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/forgebot-isolate",
    ):
        assert backend.read(path)["metadata"]["labels"] == {"forgebot.io/managed-by": "forgebot"}
    assert await harness.direct_message_containing("is ready")


async def test_a_refused_step_leaves_nothing_behind(backend: Backend, harness: Harness) -> None:
    """An earlier attempt made the namespace (it carries forgebot's labels), and a quota
    someone put there allows no LimitRange: the server refuses the limit-range step, and the
    namespace with everything in it is removed."""
    name = backend.unique("q")
    namespace = f"pv-{name}"
    core = client.CoreV1Api(backend.admin)
    core.create_namespace(
        {
            "metadata": {
                "name": namespace,
                "labels": {
                    "forgebot.io/environment": namespace,
                    "forgebot.io/managed-by": "forgebot",
                },
            }
        }
    )
    core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "no-limit-ranges"}, "spec": {"hard": {"count/limitranges": "0"}}},
    )
    backend.forbid("create", "limitranges", namespace)  # what the quota does on a real server
    await request(harness, name)
    text = await harness.direct_message_containing("could not be provisioned")
    assert "limit range" in text
    assert await harness.record(namespace) is None, "a failed environment is not live"

    async def gone() -> bool:
        try:
            backend.read(f"/api/v1/namespaces/{namespace}")
        except NotFound:
            return True
        return False

    await eventually(gone, lambda g: g)


async def test_a_namespace_forgebot_did_not_make_is_never_adopted_or_removed(
    backend: Backend, harness: Harness
) -> None:
    name = backend.unique("t")
    namespace = f"pv-{name}"
    client.CoreV1Api(backend.admin).create_namespace(
        {"metadata": {"name": namespace, "labels": {"owner": "someone-else"}}}
    )
    await request(harness, name)
    text = await harness.direct_message_containing("could not be provisioned")
    assert "already exists" in text and "did not create it" in text
    still = backend.read(f"/api/v1/namespaces/{namespace}")
    assert still["metadata"]["labels"] == {"owner": "someone-else"}
    with pytest.raises(NotFound):
        backend.read(f"/api/v1/namespaces/{namespace}/resourcequotas/forgebot-quota")
