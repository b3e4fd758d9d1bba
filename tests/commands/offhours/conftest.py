"""A running bot on an injectable clock, the fake Kubernetes API seeded with an environment's
workloads, and helpers to read back what the cluster holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from bot.runtime import Runtime
from commands.offhours.service import OffhoursService
from core.catalog import Catalog
from core.config import Settings
from integrations.sandbox.kube_api import KINDS, FakeKube
from integrations.sandbox.slack_api import RecordedCall, RunningFakeSlack
from integrations.sandbox.slack_payloads import SlackIdentity, block_actions
from integrations.sandbox.slack_payloads import slash_command as slash
from storage import environments as env_repo
from storage.models import EnvironmentRecord, EnvState
from tests.bot_harness import BotHarness, running_bot_harness

# Tuesday 24 November 2026, 17:00 UTC = 18:00 in Berlin (CET, UTC+1).
START = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
ENV = "pv-shop"
SCHEDULE = "Mon-Fri 08:00-19:00 Europe/Berlin"
_KIND = {k.kind: k for k in KINDS}
PLURAL = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "CronJob": "cronjobs",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
}


def _pod_template(name: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": f"registry.example.com/{name}:1"}]},
    }


def seed_workloads(
    kube: FakeKube,
    namespace: str,
    *,
    schedule: str | None = SCHEDULE,
    labels: dict[str, str] | None = None,
) -> None:
    """What a developer runs in a preview namespace, including what off-hours must leave alone."""
    annotations = {"forgebot.io/offhours": schedule} if schedule else {}
    kube.create(
        _KIND["Namespace"],
        "",
        {"metadata": {"name": namespace, "annotations": annotations, "labels": labels or {}}},
    )

    def deployment(name: str, replicas: int, annotations: dict[str, str] | None = None) -> None:
        kube.create(
            _KIND["Deployment"],
            namespace,
            {
                "metadata": {"name": name, "annotations": annotations or {}},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": _pod_template(name),
                },
            },
        )

    deployment("web", 3)
    deployment("api", 2)
    deployment("idle", 0)
    deployment("keeper", 2, {"forgebot.io/exclude": "true"})
    kube.create(
        _KIND["StatefulSet"],
        namespace,
        {
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 1,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": _pod_template("db"),
            },
        },
    )
    for name, suspended in (("nightly", False), ("paused", True)):
        kube.create(
            _KIND["CronJob"],
            namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "schedule": "0 3 * * *",
                    "suspend": suspended,
                    "jobTemplate": {
                        "spec": {
                            "template": {
                                "spec": {
                                    "restartPolicy": "OnFailure",
                                    "containers": [
                                        {"name": "job", "image": "registry.example.com/job:1"}
                                    ],
                                }
                            }
                        }
                    },
                },
            },
        )
    kube.create(
        _KIND["HorizontalPodAutoscaler"],
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 3,
                "maxReplicas": 10,
            },
        },
    )


def obj(kube: FakeKube, kind: str, name: str, namespace: str = ENV) -> dict[str, Any]:
    found = kube.find(PLURAL[kind], namespace, name)
    assert found is not None, f"{kind} {name} is missing"
    return found


def replicas(kube: FakeKube, namespace: str = ENV) -> dict[str, int]:
    counts = {
        o["metadata"]["name"]: int(o["spec"]["replicas"])
        for o in kube.list(_KIND["Deployment"], namespace)
    }
    counts |= {
        "sts/" + o["metadata"]["name"]: int(o["spec"]["replicas"])
        for o in kube.list(_KIND["StatefulSet"], namespace)
    }
    return counts


def validate_all(kube: FakeKube, namespace: str = ENV) -> None:
    """Every object off-hours touched is still valid Kubernetes (schemas of 1.31, strict)."""
    for kind in PLURAL:
        for item in kube.list(_KIND[kind], namespace):
            body = {k: v for k, v in item.items() if k != "status"}
            kubernetes_validate.validate(body, "1.31", strict=True)


def patches(kube: FakeKube) -> list[str]:
    return [path for method, path, _, _ in kube.requests if method == "PATCH"]


class Harness(BotHarness):
    @property
    def service(self) -> OffhoursService:
        assert self.runtime.ctx is not None
        service: OffhoursService = self.runtime.ctx.offhours
        return service

    async def add_environment(
        self,
        name: str = ENV,
        *,
        owner: str = "U0DEVELOPER",
        schedule: str | None = SCHEDULE,
        seed: bool = True,
    ) -> EnvironmentRecord:
        now = self.clock.now()
        record = EnvironmentRecord(
            name=name,
            template="web-preview",
            size="M",
            team="payments",
            owner_user_id=owner,
            cluster="dev-cluster",
            ttl_seconds=14 * 86400,
            requested_at=now,
            updated_at=now,
        )
        assert self.runtime.db is not None
        stored = await self.runtime.db.run(lambda s: env_repo.insert(s, record))
        assert stored.id is not None
        env_id = stored.id
        await self.runtime.db.run(
            lambda s: env_repo.transition(
                s,
                env_id,
                expected=[EnvState.PENDING],
                to=EnvState.ACTIVE,
                now=now,
                expires_at=now + timedelta(days=14),
            )
        )
        if seed:
            # As provisioning labels an environment's namespace.
            labels = {"forgebot.io/managed-by": "forgebot", "forgebot.io/environment": name}
            seed_workloads(self.kube, name, schedule=schedule, labels=labels)
        return stored

    async def command(self, who: SlackIdentity, command: str, text: str) -> dict[str, Any]:
        response = await self.client.send(slash(who, command, text, self.slack.new_response_url()))
        assert response.status == 200
        return response.json() or {}

    async def press(self, who: SlackIdentity, action_id: str, value: str) -> dict[str, Any]:
        body = block_actions(
            who,
            {"action_id": action_id, "block_id": "b", "value": value},
            response_url=self.slack.new_response_url(),
            message={"ts": "1.0"},
        )
        response = await self.client.send(body)
        assert response.status == 200
        return response.json() if response.body else {}

    async def message_containing(self, text: str, *, timeout: float = 10) -> RecordedCall:
        found: list[RecordedCall] = await self.slack.state.until(
            lambda calls: [
                c
                for c in calls
                if c.method == "chat.postMessage" and text in c.args.get("text", "")
            ],
            timeout=timeout,
        )
        return found[-1]

    def messages(self, text: str) -> list[RecordedCall]:
        return [
            c for c in self.slack.state.find("chat.postMessage") if text in c.args.get("text", "")
        ]

    async def responses(self, text: str, *, timeout: float = 10) -> list[dict[str, Any]]:
        """What the bot sent to response_urls containing `text`."""
        found: list[RecordedCall] = await self.slack.state.until(
            lambda calls: [
                c
                for c in calls
                if c.method.startswith("response_url") and text in str(c.args.get("text", ""))
            ],
            timeout=timeout,
        )
        return [c.args for c in found]


@pytest.fixture
async def h(
    bot_settings: Settings,
    catalog: Catalog,
    fake_slack: RunningFakeSlack,
    fake_kube: FakeKube,
    kubeconfig: Path,
) -> AsyncIterator[Harness]:
    def prepare(runtime: Runtime) -> None:
        assert runtime.ctx is not None
        runtime.ctx.offhours.retry_delays = (0.0,)

    async with running_bot_harness(
        Harness,
        bot_settings,
        catalog,
        fake_slack,
        fake_kube,
        kubeconfig,
        start=START,
        prepare=prepare,
    ) as harness:
        yield harness
