"""Read-only answers about a service in an environment, for the person asking.

Rights are checked for that person (`diagnose`: the owning team, its on-call, the platform
team), and the cluster is read as the owning team's Kubernetes identity when the catalog names
one (impersonation, as for writes), so RBAC narrows it further. Nothing here reads a Secret,
and every log line is redacted before it is shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from commands.deploy.freeze import FreezeService, FreezeState
from commands.deploy.history import version_of
from commands.diagnostics.parse import Target as Asked
from commands.diagnostics.redact import redact
from commands.slo.budget import SloFigures, worst_first
from commands.slo.service import SloService
from core.auth import Action, Actor, Authorizer, Target
from core.catalog import Catalog, KubernetesIdentity
from core.clock import Clock
from core.errors import ForgebotError, NotAuthorized
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.rollout import RolloutStatus, status_of
from storage import deployments
from storage.db import Database
from storage.models import DeploymentRecord

T = TypeVar("T")
BUDGET_SECONDS = 8.0
"""A hung cluster gets a clear error after this. Answers normally take well under 3 s for 50
pods (bench/diagnostics.py): the reads run concurrently, one list call each."""
LOG_TAIL_LINES = 500
LOG_MAX_BYTES = 2_000_000
MAX_PODS = 100


@dataclass(frozen=True)
class PodLine:
    name: str
    ready: str
    phase: str
    restarts: int
    reason: str


@dataclass(frozen=True)
class EventLine:
    at: str
    involved: str
    reason: str
    message: str
    count: int


@dataclass
class StatusReport:
    asked: Asked
    version: str = ""
    rollout: RolloutStatus | None = None
    pods: list[PodLine] = field(default_factory=list)
    events: list[EventLine] = field(default_factory=list)
    slos: list[SloFigures] = field(default_factory=list)
    deploys: list[DeploymentRecord] = field(default_factory=list)
    freeze: FreezeState | None = None
    runbook: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LogResult:
    text: str
    pods: int
    notes: list[str]


def _reason(container: dict[str, Any]) -> str:
    """Why a container is not running now, and why it last stopped (OOMKilled, Error...)."""
    state = container.get("state") or {}
    parts = [
        str(state[key]["reason"])
        for key in ("waiting", "terminated")
        if (state.get(key) or {}).get("reason")
    ]
    last = (container.get("lastState") or {}).get("terminated") or {}
    if last.get("reason"):
        parts.append(f"last exit: {last['reason']}")
    return ", ".join(parts)


def pod_line(pod: dict[str, Any]) -> PodLine:
    status = pod.get("status") or {}
    containers = list(status.get("containerStatuses") or [])
    ready = sum(1 for c in containers if c.get("ready"))
    reasons = [r for r in (_reason(c) for c in containers) if r]
    return PodLine(
        name=str((pod.get("metadata") or {}).get("name", "")),
        ready=f"{ready}/{len(containers)}",
        phase=str(status.get("phase", "")),
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        reason=", ".join(reasons),
    )


@dataclass
class DiagnosticsService:
    catalog: Catalog
    db: Database
    clock: Clock
    auth: Authorizer
    kube: KubeGateway
    slos: SloService | None
    freezes: FreezeService

    def identity(self, actor: Actor, asked: Asked) -> KubernetesIdentity | None:
        """Refuse whoever may not look; otherwise the identity the cluster is read as."""
        decision = self.auth.authorize(actor, Action.DIAGNOSE, Target(service=asked.service))
        if not decision.allowed:
            raise NotAuthorized(decision.explain(Action.DIAGNOSE))
        entry = self.catalog.service(asked.service)
        team = self.catalog.team(entry.team) if entry else None
        return team.kubernetes if team is not None else None

    async def _deployment(self, asked: Asked, who: KubernetesIdentity | None) -> dict[str, Any]:
        w = asked.workload
        return await self.kube.read_deployment(w.cluster, w.namespace, w.deployment, who)

    async def _pods(
        self, asked: Asked, deployment: dict[str, Any], who: KubernetesIdentity | None
    ) -> list[dict[str, Any]]:
        labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        w = asked.workload
        pods = await self.kube.list_pods(w.cluster, w.namespace, selector, who)
        return pods[:MAX_PODS]

    async def _events(self, asked: Asked, who: KubernetesIdentity | None) -> list[EventLine]:
        w = asked.workload
        found = await self.kube.list_events(w.cluster, w.namespace, who)
        cutoff = self.clock.now() - asked.since
        lines = []
        for event in found:
            involved = event.get("involvedObject") or {}
            name = str(involved.get("name", ""))
            if not name.startswith(w.deployment):
                continue
            at = str(event.get("lastTimestamp") or event.get("eventTime") or "")
            try:
                if at and datetime.fromisoformat(at.replace("Z", "+00:00")) < cutoff:
                    continue
            except ValueError:
                pass
            lines.append(
                EventLine(
                    at=at[11:16] if len(at) >= 16 else at,
                    involved=f"{involved.get('kind', '')}/{name}",
                    reason=str(event.get("reason", "")),
                    message=redact(str(event.get("message", ""))),
                    count=int(event.get("count") or 1),
                )
            )
        lines.sort(key=lambda e: e.at, reverse=True)
        return lines

    async def pods(self, actor: Actor, asked: Asked) -> list[PodLine]:
        who = self.identity(actor, asked)

        async def read() -> list[PodLine]:
            deployment = await self._deployment(asked, who)
            return [pod_line(p) for p in await self._pods(asked, deployment, who)]

        return await _within(read())

    async def events(self, actor: Actor, asked: Asked) -> list[EventLine]:
        who = self.identity(actor, asked)
        return await _within(self._events(asked, who))

    async def logs(self, actor: Actor, asked: Asked) -> LogResult:
        who = self.identity(actor, asked)
        w = asked.workload
        container = asked.container or w.container

        async def read() -> LogResult:
            if asked.pod:
                names = [asked.pod]
            else:
                deployment = await self._deployment(asked, who)
                names = [pod_line(p).name for p in await self._pods(asked, deployment, who)]
            since = int(asked.since.total_seconds())

            async def one(name: str) -> tuple[str, str | None, str]:
                try:
                    text = await self.kube.read_log(
                        w.cluster,
                        w.namespace,
                        name,
                        container=container,
                        since_seconds=since,
                        tail_lines=LOG_TAIL_LINES,
                        previous=asked.previous,
                        identity=who,
                    )
                    return name, text, ""
                except ForgebotError as exc:
                    return name, None, str(exc)

            results = await asyncio.gather(*(one(n) for n in names))
            chunks, notes, size = [], [], 0
            for name, text, error in results:
                if text is None:
                    notes.append(f"{name}: {error}")
                    continue
                for line in text.splitlines():
                    entry = f"[{name}] {line}\n"
                    size += len(entry)
                    if size > LOG_MAX_BYTES:
                        notes.append("output cut at 2 MB; narrow it with --since or --pod")
                        break
                    chunks.append(entry)
            return LogResult(redact("".join(chunks)), len(names), notes)

        return await _within(read())

    async def status(self, actor: Actor, asked: Asked) -> StatusReport:
        who = self.identity(actor, asked)
        report = StatusReport(asked)
        entry = self.catalog.service(asked.service)
        report.runbook = (entry.runbook or "") if entry else ""

        async def cluster() -> None:
            deployment = await self._deployment(asked, who)
            pods = await self._pods(asked, deployment, who)
            report.rollout = status_of(deployment, pods)
            containers = (
                ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
            ).get("containers") or []
            image = next(
                (
                    c.get("image", "")
                    for c in containers
                    if c.get("name") == asked.workload.container
                ),
                containers[0].get("image", "") if containers else "",
            )
            report.version = version_of(image) if image else ""
            report.pods = [pod_line(p) for p in pods]

        async def events() -> None:
            report.events = await self._events(asked, who)

        async def slo() -> None:
            if self.slos is None:
                return
            refs = [
                r for r in self.slos.refs([asked.service]) if r.slo.environment == asked.environment
            ]
            if refs:
                report.slos = worst_first(
                    await self.slos.evaluate(refs, self.clock.now(), trend=False, deadline=2.0)
                )

        async def history() -> None:
            report.deploys = list(
                await self.db.run(
                    lambda s: deployments.history(s, asked.service, asked.environment, limit=3)
                )
            )

        async def freeze() -> None:
            report.freeze = await self.freezes.frozen(asked.environment)

        parts = {
            "cluster": cluster(),
            "warning events": events(),
            "SLOs": slo(),
            "deploy history": history(),
            "freeze": freeze(),
        }
        results = await asyncio.gather(
            *(_within(p) for p in parts.values()), return_exceptions=True
        )
        for what, result in zip(parts, results, strict=True):
            if isinstance(result, NotAuthorized):
                raise result
            if isinstance(result, BaseException):
                text = str(result) if isinstance(result, ForgebotError) else type(result).__name__
                report.problems.append(f"{what}: {text}")
        return report


async def _within(work: Awaitable[T]) -> T:
    try:
        async with asyncio.timeout(BUDGET_SECONDS):
            return await work
    except TimeoutError:
        raise ForgebotError("the cluster did not answer within 8 s; try again") from None
