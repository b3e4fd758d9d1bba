"""GitOps delivery: a deploy is a commit to the desired-state repository, followed through the
controller that applies it (Argo CD or Flux) and then through the workload's own rollout.

`GitOpsDelivery` is what the deploy, rollback and history services ask when the catalog says
`delivery: gitops` for a service in an environment:

- `current` reads the version the repository holds now (the deploy's "from");
- `push` makes the one commit (authored by the bot, the requester as `Co-authored-by`, the
  Slack message linked), keyed by the operation so a retry finds it instead of committing again;
- `follow` waits until the controller has applied that commit and calls it healthy, reporting
  its state to the progress message, and fails with the controller's own message;
- `history` lists the commits that changed the field's file.

Tokens come from secret references (`env:VARIABLE`, `file:/path`), are registered with the log
filter before first use, and never appear in a message, a commit or a log line.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from commands.deploy.history import version_of
from commands.deploy.runner import Change, RolloutNotifier
from core.catalog import Catalog, Workload
from core.catalog_gitops import GitOpsTarget
from core.clock import Clock
from core.errors import DependencyUnavailable, ForgebotError
from core.logs import register_secret
from core.yaml_field import FieldError
from integrations.codehost.pull_requests import pull_requests
from integrations.git.repository import CommitInfo, DesiredStateRepo, FieldChange, Identity, Pushed
from integrations.kubernetes.gateway import KubeGateway
from integrations.kubernetes.gitops import ControllerStatus, controller_status, sync_windows
from integrations.kubernetes.rollout import RolloutStatus
from storage import deployments as deployments_repo
from storage.db import Database

T = TypeVar("T")

DEFAULT_AUTHOR = Identity("forgebot", "forgebot@users.noreply.invalid")
COAUTHOR_DOMAIN = "users.slack.invalid"
"""Slack user IDs become co-author addresses here: the bot has no `users:read.email` scope."""


def resolve_token(reference: str | None) -> str | None:
    """The token a secret reference points at (`env:NAME` or `file:/path`), or None."""
    if reference is None:
        return None
    kind, _, where = reference.partition(":")
    if kind == "env":
        value = os.environ.get(where, "").strip()
        if not value:
            raise ForgebotError(
                f"the Git credentials {reference} are not set in forgebot's environment"
            )
    else:
        try:
            value = Path(where).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ForgebotError(
                f"the Git credentials {reference} cannot be read: {exc.strerror}"
            ) from None
    register_secret(value)
    return value


def operation_tag(idempotency_key: str) -> str:
    """The `Forgebot-Operation` trailer value: short, stable, free of spaces and of Slack ids."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]


def slack_link(channel: str, ts: str) -> str:
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}" if ts else ""


@dataclass(frozen=True)
class CommitRequest:
    """Everything the commit says, in people's words."""

    subject: str
    value: str
    expect: str | None
    requester: str
    slack_channel: str
    slack_ts: str
    idempotency_key: str
    body: str = ""

    def message(self) -> str:
        lines = [self.subject, ""]
        if self.body:
            lines += [self.body, ""]
        link = slack_link(self.slack_channel, self.slack_ts)
        lines.append(f"Requested in Slack by {self.requester}" + (f": {link}" if link else "."))
        lines += ["", f"Co-authored-by: {self.requester} <{self.requester}@{COAUTHOR_DOMAIN}>"]
        return "\n".join(lines)


@dataclass
class GitOpsDelivery:
    catalog: Catalog
    db: Database
    clock: Clock
    kube: KubeGateway
    author: Identity = DEFAULT_AUTHOR
    concurrency: int = 8
    """Most Git operations (each one or two HTTP connections) at once, across repositories."""
    poll_seconds: float = 2.0
    timeout_seconds: float = 600.0
    review_poll_seconds: float = 30.0
    review_timeout_seconds: float = 24 * 3600.0
    """How long a deploy's pull request may wait for its approving review and merge."""
    _slots: asyncio.Semaphore | None = field(default=None, repr=False)
    _queues: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict, repr=False)
    _repos: dict[tuple[str, str], DesiredStateRepo] = field(default_factory=dict, repr=False)
    """One push at a time per repository and branch from this process: concurrent deploys
    to one repository would only race each other; another writer (a person, CI, another
    replica) is still met by rebasing onto the moved branch."""

    def target(self, service: str, environment: str) -> tuple[Workload, GitOpsTarget] | None:
        entry = self.catalog.service(service)
        workload = entry.workloads.get(environment) if entry else None
        if workload is None or workload.gitops is None:
            return None
        return workload, workload.gitops

    async def sync_windows(self, environment: str) -> list[str]:
        """For a freeze: the controllers' own windows for the environment's Git-delivered
        workloads (Argo CD sync windows; a suspended Flux object), one line each."""
        lines = []
        for service in self.catalog.services:
            workload = service.workloads.get(environment)
            if workload is None or workload.gitops is None:
                continue
            controller = workload.gitops.controller
            try:
                windows = await sync_windows(self.kube, workload.cluster, controller)
            except ForgebotError as exc:
                lines.append(f"{controller.label}: sync windows unavailable ({exc})")
                continue
            described = "; ".join(w.describe() for w in windows) or "no sync windows"
            lines.append(f"{controller.label} ({service.name}): {described}")
        return lines

    def approval(self, environment: str) -> str:
        """`review` (the pull request's approving review is the second person) or `slack`."""
        env = self.catalog.environment(environment)
        return env.gitops.approval if env else "review"

    def via_pull_request(self, environment: str, target: GitOpsTarget) -> bool:
        if target.via_pull_request is not None:
            return target.via_pull_request
        env = self.catalog.environment(environment)
        return bool(env and env.gitops.via_pull_request)

    def _repo(self, target: GitOpsTarget) -> DesiredStateRepo:
        """The repository's in-memory copy, kept between deploys (fetches bring only what is
        new); the token is read again each time, so a rotated secret is used at once."""
        token = resolve_token(target.credentials)
        key = (target.repository, target.branch)
        repo = self._repos.get(key)
        if repo is None:
            repo = self._repos[key] = DesiredStateRepo(
                target.repository, target.branch, token, self.author
            )
        repo.token = token
        return repo

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        async with self._slots:
            try:
                return await asyncio.to_thread(fn)
            except FieldError as exc:
                raise ForgebotError(f"the desired-state file cannot be used: {exc}") from None

    @staticmethod
    def value_for(target: GitOpsTarget, image: str, version: str) -> str:
        """What the field holds for a version: the full image for a plain YAML path."""
        return image if target.field.kind == "yaml-path" else version

    @staticmethod
    def version_in(target: GitOpsTarget, value: str) -> str:
        return version_of(value) if target.field.kind == "yaml-path" else value

    async def current(self, target: GitOpsTarget) -> tuple[str, str]:
        """(the field's value at the branch's tip, the tip)."""
        repo = self._repo(target)
        return await self._run(lambda: repo.read(target.file, target.field))

    async def push(self, target: GitOpsTarget, request: CommitRequest) -> Pushed:
        repo = self._repo(target)
        change = FieldChange(
            target.file,
            target.field,
            request.value,
            request.expect,
            request.message(),
            operation_tag(request.idempotency_key),
        )
        queue = self._queues.setdefault((target.repository, target.branch), asyncio.Lock())
        async with queue:
            now = self.clock.now()
            return await self._run(lambda: repo.change(change, now))

    async def history(self, target: GitOpsTarget, limit: int = 15) -> list[CommitInfo]:
        repo = self._repo(target)
        return await self._run(lambda: repo.log(target.file, limit))

    async def follow(
        self,
        workload: Workload,
        target: GitOpsTarget,
        commit: str,
        report: Callable[[ControllerStatus], Awaitable[None]],
    ) -> ControllerStatus:
        """Until the controller has applied `commit` and calls it healthy; raises with the
        controller's own message when it fails or when the timeout passes."""
        started = self.clock.now()
        last: ControllerStatus | None = None
        while True:
            try:
                status = await controller_status(
                    self.kube, workload.cluster, target.controller, commit
                )
            except DependencyUnavailable as exc:
                status = ControllerStatus(
                    False, False, "cluster unreachable, still trying", str(exc)
                )
            last = status
            await report(status)
            if status.failed:
                raise ForgebotError(
                    f"{target.controller.label} failed to apply {commit[:10]}: "
                    f"{status.message or status.summary}"
                )
            if status.applied:
                return status
            if self._elapsed(started) >= self.timeout_seconds:
                said = last.message or last.summary
                raise ForgebotError(
                    f"{target.controller.label} had not applied {commit[:10]} after "
                    f"{int(self.timeout_seconds)} s; it says: {said}"
                )
            await asyncio.sleep(self.poll_seconds)

    async def apply(
        self,
        payload: dict[str, Any],
        workload: Workload,
        target: GitOpsTarget,
        request: CommitRequest,
        notify: RolloutNotifier,
    ) -> Pushed:
        """The GitOps half of a rollout operation (see `RolloutRunner.run`): push the commit,
        record it, and follow the controller in the rollout's one message. The workload's own
        rollout is followed after, by the runner, as for a direct deploy."""
        change = Change(**payload["change"])
        channel, ts = str(payload["channel"]), str(payload["ts"])
        deployment_id = int(payload["deployment_id"])
        started = self.clock.now()

        async def say(text: str) -> None:
            status = RolloutStatus(0, 0, 0, 0, False, False, text)
            await notify.progress(channel, ts, change, status, self._elapsed(started))

        if self.via_pull_request(change.environment, target):
            pushed = await self._through_pull_request(change, target, request, say)
        else:
            await say(f"committing to {target.file} on {target.branch}")
            pushed = await self.push(target, request)
        await self.db.run(
            lambda s: deployments_repo.set_desired_state_commit(s, deployment_id, pushed.commit)
        )
        short = pushed.commit[:10]

        async def report(status: ControllerStatus) -> None:
            await say(f"commit {short} pushed; {target.controller.label}: {status.summary}")

        await self.follow(workload, target, pushed.commit, report)
        return pushed

    async def _through_pull_request(
        self,
        change: Change,
        target: GitOpsTarget,
        request: CommitRequest,
        say: Callable[[str], Awaitable[None]],
    ) -> Pushed:
        """Push the commit on its own branch, open (or find) its pull request, and wait for
        the merge: forgebot merges it once it has an approving review (`approval: review`),
        or at once when the second person already approved in Slack (`approval: slack`)."""
        provider = target.provider
        token = resolve_token(target.credentials)
        if provider is None or token is None:
            raise ForgebotError(
                f"{target.repository} takes pull requests, but the catalog names no `code_host` "
                "(github or gitlab) or no credentials for it"
            )
        tag = operation_tag(request.idempotency_key)
        head = f"forgebot/{change.service}-{change.environment}-{tag[:10]}"
        change_request = FieldChange(
            target.file, target.field, request.value, request.expect, request.message(), tag
        )
        repo, now = self._repo(target), self.clock.now()
        await say(f"pushing branch {head}")
        queue = self._queues.setdefault((target.repository, target.branch), asyncio.Lock())
        async with queue:
            proposed = await self._run(lambda: repo.propose(change_request, head, now))
        if not proposed.branch:
            return proposed  # merged already (a resumed operation), or nothing to change
        api = pull_requests(provider, target.repository, token, target.code_host_api)
        try:
            pull = await api.find(head) or await api.open(
                head, target.branch, request.subject, request.message()
            )
            by_review = self.approval(change.environment) == "review"
            started = self.clock.now()
            while True:
                if pull.state == "merged" and pull.merge_commit:
                    return Pushed(pull.merge_commit, proposed.previous, True, 1, head)
                if pull.state == "closed":
                    raise ForgebotError(f"pull request #{pull.number} was closed without merging")
                if not by_review or pull.approved_by:
                    merged = await api.merge(pull.number, pull.head_sha, request.subject)
                    pull = await api.get(pull.number)
                    return Pushed(pull.merge_commit or merged, proposed.previous, True, 1, head)
                await say(
                    f"pull request #{pull.number} is waiting for an approving review: {pull.url}"
                )
                if self._elapsed(started) >= self.review_timeout_seconds:
                    raise ForgebotError(
                        f"pull request #{pull.number} was not approved within "
                        f"{int(self.review_timeout_seconds // 3600)} h; it stays open: {pull.url}"
                    )
                await asyncio.sleep(self.review_poll_seconds)
                pull = await api.get(pull.number)
        finally:
            await api.close()

    def _elapsed(self, since: datetime) -> float:
        return (self.clock.now() - since).total_seconds()
