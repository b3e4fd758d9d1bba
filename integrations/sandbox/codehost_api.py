"""The one loopback fake of the GitHub and GitLab REST APIs forgebot calls, for the demo, the
tests and the bench: previews (comments, deployments) and GitOps delivery (pull requests).

GitHub lives under `/github` (issue comments, deployments and deployment statuses, pull
requests: list, create, get, reviews, commits, merge), GitLab under `/gitlab/api/v4` (merge
request notes, commits, merge requests: list, create, get, approvals, merge; environments: list
by name, create, update, stop; deployments: create, update). Each request
is checked against the documented shape: the authentication header, GitHub's `Accept` and API
version headers, a JSON object body with the required fields of the right types and no field
the API does not document; a request that breaks it is answered 4xx the way the real API would
and kept in `violations`. Thread-safe: tests read the state from their own loop.

Pull requests are state the owner can drive: `approve` plays a reviewer, `close` closes one.
The branches can be real: the owner passes `head_sha` (the branch's commit on a Git server) and
`merge` (makes the merge commit there), so a merged pull request moves the real branch; a merge
whose `sha` is not the head is refused 409, as both APIs do when the head moved.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from integrations.sandbox.server_thread import RunningServer, serve_in_thread

GITHUB_PREFIX = "/github"
GITLAB_PREFIX = "/gitlab/api/v4"

COMMENT_FIELDS = {"body": str}
DEPLOYMENT_FIELDS: dict[str, Any] = {
    "ref": str,
    "task": str,
    "auto_merge": bool,
    "required_contexts": list,
    "payload": (dict, str),
    "environment": str,
    "description": (str, type(None)),
    "transient_environment": bool,
    "production_environment": bool,
}
STATUS_FIELDS: dict[str, Any] = {
    "state": str,
    "target_url": str,
    "log_url": str,
    "description": str,
    "environment": str,
    "environment_url": str,
    "auto_inactive": bool,
}
STATUS_STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
GITHUB_API_VERSIONS = {"2022-11-28"}
PULL_FIELDS: dict[str, Any] = {
    "title": str,
    "head": str,
    "head_repo": str,
    "base": str,
    "body": str,
    "maintainer_can_modify": bool,
    "draft": bool,
    "issue": int,
}
PULL_MERGE_FIELDS: dict[str, Any] = {
    "commit_title": str,
    "commit_message": str,
    "sha": str,
    "merge_method": str,
}
MERGE_METHODS = {"merge", "squash", "rebase"}
MR_FIELDS: dict[str, Any] = {
    "source_branch": str,
    "target_branch": str,
    "title": str,
    "description": str,
    "remove_source_branch": bool,
    "squash": bool,
    "allow_collaboration": bool,
    "labels": str,
    "assignee_id": int,
    "reviewer_ids": list,
    "target_project_id": int,
    "milestone_id": int,
}
GITLAB_ENVIRONMENT_FIELDS: dict[str, Any] = {
    "name": str,
    "description": str,
    "external_url": str,
    "tier": str,
    "cluster_agent_id": int,
    "kubernetes_namespace": str,
    "flux_resource_path": str,
    "auto_stop_setting": str,
}
GITLAB_ENVIRONMENT_UPDATE_FIELDS = {
    k: v for k, v in GITLAB_ENVIRONMENT_FIELDS.items() if k != "name"
}
GITLAB_TIERS = {"production", "staging", "testing", "development", "other"}
GITLAB_STOP_FIELDS: dict[str, Any] = {"force": bool}
GITLAB_DEPLOYMENT_FIELDS: dict[str, Any] = {
    "environment": str,
    "sha": str,
    "ref": str,
    "tag": bool,
    "status": str,
}
GITLAB_DEPLOYMENT_STATUSES = {"running", "success", "failed", "canceled"}
GITLAB_DEPLOYMENT_UPDATE_FIELDS: dict[str, Any] = {"status": str}
MR_MERGE_FIELDS: dict[str, Any] = {
    "sha": str,
    "merge_commit_message": str,
    "squash_commit_message": str,
    "squash": bool,
    "should_remove_source_branch": bool,
    "merge_when_pipeline_succeeds": bool,
    "auto_merge": bool,
}


def _fake_sha(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def _fake_head(repository: str, branch: str) -> str:
    return _fake_sha("head", repository, branch)


def _fake_merge(repository: str, head: str, base: str, message: str) -> str:
    return _fake_sha("merge", repository, head, base, message)


@dataclass
class Call:
    provider: str
    method: str
    path: str
    body: Any


@dataclass
class FakePull:
    """A GitHub pull request or a GitLab merge request (`number` is the iid)."""

    number: int
    repo: str
    head: str
    base: str
    title: str
    body: str
    state: str = "open"  # open | merged | closed
    merge_commit: str | None = None
    approved_by: list[str] = field(default_factory=list)


@dataclass
class FakeCodeHost:
    token: str
    head_sha: Callable[[str, str], str] = _fake_head
    """(repository path, branch) -> the branch's commit (on the Git server, when there is one)."""
    merge: Callable[[str, str, str, str], str] = _fake_merge
    """(repository path, head, base, message) -> the merge commit on base."""
    latency: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)
    calls: list[Call] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    comments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """id -> {provider, repository, number, body, edits}"""
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """id -> {provider, repository, ref, environment, statuses: [state, ...]}"""
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """GitLab's: id -> {repository, name, external_url, tier, state: available|stopped}"""
    commits: dict[tuple[str, str, int], list[str]] = field(default_factory=dict)
    """(provider, repository, number) -> ISO author dates, oldest first."""
    pulls: list[FakePull] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, raw path with query) of every request, as sent."""
    errors_500: int = 0
    lost_creations: int = 0
    """The next N pull or merge requests are created, then answered 502 (a proxy that
    failed after the host acted): the client's retry meets the duplicate."""
    in_flight: int = 0
    max_in_flight: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.violations.clear()
            self.comments.clear()
            self.deployments.clear()
            self.environments.clear()
            self.commits.clear()
            self.pulls.clear()
            self.requests.clear()
            self.errors_500 = 0
            self.lost_creations = 0
            self.latency = 0.0
            self.max_in_flight = 0

    def comments_on(self, provider: str, repository: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [
                dict(c)
                for c in self.comments.values()
                if (c["provider"], c["repository"], c["number"]) == (provider, repository, number)
            ]

    def deployments_of(self, repository: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(d) for d in self.deployments.values() if d["repository"] == repository]

    def environment_named(self, repository: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return next(
                (
                    dict(e)
                    for e in self.environments.values()
                    if (e["repository"], e["name"]) == (repository, name)
                ),
                None,
            )

    def count(self, method: str, fragment: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.method == method and fragment in c.path)

    def approve(self, number: int, reviewer: str) -> None:
        with self.lock:
            next(p for p in self.pulls if p.number == number).approved_by.append(reviewer)

    def close(self, number: int) -> None:
        with self.lock:
            next(p for p in self.pulls if p.number == number).state = "closed"


class _Lost(Exception):
    """The request was acted on, and its answer is a 502."""


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _check_body(
    body: Any, fields: dict[str, Any], required: set[str], what: str, status: int = 422
) -> dict[str, Any]:
    """`status`: GitHub answers 422 Validation Failed, GitLab's merge request API 400."""
    if not isinstance(body, dict):
        raise _Refused(400, f"{what}: the body must be a JSON object")
    for name in sorted(required):
        if name not in body:
            raise _Refused(status, f"{what}: {name} is required")
    for name, value in body.items():
        if name not in fields:
            raise _Refused(status, f"{what}: {name} is not a documented parameter")
        if not isinstance(value, fields[name]) or (fields[name] is int and isinstance(value, bool)):
            raise _Refused(status, f"{what}: {name} has the wrong type")
    return body


def build_app(fake: FakeCodeHost) -> web.Application:
    @web.middleware
    async def bookkeeping(request: web.Request, handler: Any) -> web.StreamResponse:
        with fake.lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        with fake.lock:
            fake.requests.append((request.method, request.raw_path))
        try:
            if fake.latency:
                await asyncio.sleep(fake.latency)
            with fake.lock:
                fail = fake.errors_500 > 0
                if fail:
                    fake.errors_500 -= 1
            if fail:
                return web.json_response({"message": "injected failure"}, status=502)
            try:
                response: web.StreamResponse = await handler(request)
                return response
            except _Refused as exc:
                with fake.lock:
                    fake.violations.append(f"{request.method} {request.path}: {exc.message}")
                return web.json_response({"message": exc.message}, status=exc.status)
            except _Lost:
                return web.json_response({"message": "injected failure after acting"}, status=502)
        finally:
            with fake.lock:
                fake.in_flight -= 1

    async def body_of(request: web.Request) -> Any:
        if request.method in ("GET", "DELETE"):
            return None
        if request.content_type != "application/json":
            raise _Refused(415, "the body must be application/json")
        try:
            return await request.json()
        except ValueError:
            raise _Refused(400, "Problems parsing JSON") from None

    def record(provider: str, request: web.Request, body: Any) -> None:
        with fake.lock:
            fake.calls.append(Call(provider, request.method, request.path, body))

    def pull(repository: str, number: str, not_found: str) -> FakePull:
        found = None
        if number.isdigit():
            found = next(
                (p for p in fake.pulls if p.repo == repository and p.number == int(number)), None
            )
        if found is None:
            raise _Refused(404, not_found)
        return found

    def open_pull(
        repository: str, head: str, base: str, title: str, body: str, duplicate: _Refused
    ) -> FakePull:
        if any(p.repo == repository and p.head == head and p.state == "open" for p in fake.pulls):
            raise duplicate
        created = FakePull(len(fake.pulls) + 1, repository, head, base, title, body)
        fake.pulls.append(created)
        if fake.lost_creations > 0:
            fake.lost_creations -= 1
            raise _Lost()
        return created

    def merge_pull(p: FakePull, sha: str, message: str) -> str:
        if p.state != "open":
            raise _Refused(405, "Pull Request is not mergeable")
        if sha != fake.head_sha(p.repo, p.head):
            raise _Refused(409, "Head branch was modified. Review and try the merge again.")
        p.merge_commit = fake.merge(p.repo, p.head, p.base, message)
        p.state = "merged"
        return p.merge_commit

    def github_json(p: FakePull) -> dict[str, Any]:
        return {
            "number": p.number,
            "html_url": f"https://github.example/{p.repo}/pull/{p.number}",
            "state": "closed" if p.state != "open" else "open",
            "merged": p.state == "merged",
            "merged_at": "2026-12-01T12:00:00Z" if p.state == "merged" else None,
            "merge_commit_sha": p.merge_commit,
            "head": {"ref": p.head, "sha": fake.head_sha(p.repo, p.head)},
            "base": {"ref": p.base},
            "title": p.title,
        }

    def gitlab_json(p: FakePull) -> dict[str, Any]:
        return {
            "iid": p.number,
            "web_url": f"https://gitlab.example/{p.repo}/-/merge_requests/{p.number}",
            "state": {"open": "opened"}.get(p.state, p.state),
            "merge_commit_sha": p.merge_commit,
            "sha": fake.head_sha(p.repo, p.head),
            "source_branch": p.head,
            "target_branch": p.base,
            "title": p.title,
        }

    def github_pulls(
        request: web.Request, repository: str, rest: list[str], body: Any
    ) -> web.Response | None:
        method = request.method
        if method == "GET" and rest == ["pulls"]:
            owner, _, branch = request.query.get("head", "").partition(":")
            if not branch or owner != repository.split("/")[0]:
                raise _Refused(422, "list pull requests: head must be owner:branch")
            found = [
                github_json(p) for p in fake.pulls if p.repo == repository and p.head == branch
            ]
            return web.json_response(found[::-1])
        if method == "POST" and rest == ["pulls"]:
            _check_body(body, PULL_FIELDS, {"title", "head", "base"}, "create a pull request")
            created = open_pull(
                repository,
                body["head"],
                body["base"],
                body["title"],
                body.get("body") or "",
                _Refused(422, f"A pull request already exists for {repository}:{body['head']}."),
            )
            return web.json_response(github_json(created), status=201)
        if method == "GET" and len(rest) == 2 and rest[0] == "pulls":
            return web.json_response(github_json(pull(repository, rest[1], "Not Found")))
        if method == "GET" and len(rest) == 3 and rest[0] == "pulls" and rest[2] == "reviews":
            p = pull(repository, rest[1], "Not Found")
            return web.json_response(
                [{"user": {"login": who}, "state": "APPROVED"} for who in p.approved_by]
            )
        if method == "PUT" and len(rest) == 3 and rest[0] == "pulls" and rest[2] == "merge":
            _check_body(body, PULL_MERGE_FIELDS, {"sha", "merge_method"}, "merge a pull request")
            if body["merge_method"] not in MERGE_METHODS:
                raise _Refused(422, f"merge_method {body['merge_method']} is not documented")
            p = pull(repository, rest[1], "Not Found")
            sha = merge_pull(p, body["sha"], str(body.get("commit_title") or p.title))
            return web.json_response({"sha": sha, "merged": True, "message": "Pull Request merged"})
        return None

    def gitlab_merge_requests(
        request: web.Request, repository: str, rest: list[str], body: Any
    ) -> web.Response | None:
        method = request.method
        if method == "GET" and not rest:
            branch = request.query.get("source_branch", "")
            found = [
                gitlab_json(p) for p in fake.pulls if p.repo == repository and p.head == branch
            ]
            return web.json_response(found[::-1])
        if method == "POST" and not rest:
            _check_body(
                body,
                MR_FIELDS,
                {"source_branch", "target_branch", "title"},
                "create a merge request",
                status=400,
            )
            created = open_pull(
                repository,
                body["source_branch"],
                body["target_branch"],
                body["title"],
                body.get("description") or "",
                _Refused(
                    409,
                    "Another open merge request already exists for this source branch",
                ),
            )
            return web.json_response(gitlab_json(created), status=201)
        if method == "GET" and len(rest) == 1:
            return web.json_response(gitlab_json(pull(repository, rest[0], "404 Not found")))
        if method == "GET" and len(rest) == 2 and rest[1] == "approvals":
            p = pull(repository, rest[0], "404 Not found")
            return web.json_response(
                {
                    "approved": bool(p.approved_by),
                    "approved_by": [{"user": {"username": u}} for u in p.approved_by],
                }
            )
        if method == "PUT" and len(rest) == 2 and rest[1] == "merge":
            _check_body(body, MR_MERGE_FIELDS, {"sha"}, "merge a merge request", status=400)
            p = pull(repository, rest[0], "404 Not found")
            sha = merge_pull(p, body["sha"], str(body.get("merge_commit_message") or p.title))
            return web.json_response({**gitlab_json(p), "merge_commit_sha": sha})
        return None

    def gitlab_environment_json(eid: str) -> dict[str, Any]:
        e = fake.environments[eid]
        return {
            "id": int(eid),
            "name": e["name"],
            "external_url": e["external_url"],
            "tier": e["tier"],
            "state": e["state"],
        }

    def gitlab_environments(
        request: web.Request, repository: str, rest: list[str], body: Any
    ) -> web.Response:
        """Environments API: list (by `name`), create, update, stop."""
        method = request.method
        if method == "GET" and not rest:
            name = request.query.get("name")
            return web.json_response(
                [
                    gitlab_environment_json(eid)
                    for eid, e in fake.environments.items()
                    if e["repository"] == repository and (name is None or e["name"] == name)
                ]
            )
        if method == "POST" and not rest:
            _check_body(
                body, GITLAB_ENVIRONMENT_FIELDS, {"name"}, "create an environment", status=400
            )
            if body.get("tier", "other") not in GITLAB_TIERS:
                raise _Refused(400, f"tier {body['tier']} is not one of {sorted(GITLAB_TIERS)}")
            if any(
                (e["repository"], e["name"]) == (repository, body["name"])
                for e in fake.environments.values()
            ):
                raise _Refused(400, "name: has already been taken")
            eid = str(next(fake._ids))
            fake.environments[eid] = {
                "repository": repository,
                "name": body["name"],
                "external_url": body.get("external_url"),
                "tier": body.get("tier", "other"),
                "state": "available",
                "stops": 0,
            }
            return web.json_response(gitlab_environment_json(eid), status=201)
        eid = rest[0] if rest else ""
        environment = fake.environments.get(eid)
        if environment is None or environment["repository"] != repository:
            raise _Refused(404, "404 Environment Not Found")
        if method == "PUT" and len(rest) == 1:
            _check_body(
                body, GITLAB_ENVIRONMENT_UPDATE_FIELDS, set(), "update an environment", status=400
            )
            environment.update({k: v for k, v in body.items() if k in ("external_url", "tier")})
            return web.json_response(gitlab_environment_json(eid))
        if method == "POST" and rest[1:] == ["stop"]:
            _check_body(body or {}, GITLAB_STOP_FIELDS, set(), "stop an environment", status=400)
            environment["state"] = "stopped"
            environment["stops"] += 1
            return web.json_response(gitlab_environment_json(eid))
        raise _Refused(404, "404 Not Found")

    def gitlab_deployments(
        request: web.Request, repository: str, rest: list[str], body: Any
    ) -> web.Response:
        """Deployments API: create (`running`, ...), update its status."""
        if request.method == "POST" and not rest:
            _check_body(
                body,
                GITLAB_DEPLOYMENT_FIELDS,
                set(GITLAB_DEPLOYMENT_FIELDS),
                "create a deployment",
                status=400,
            )
            if body["status"] not in GITLAB_DEPLOYMENT_STATUSES:
                raise _Refused(400, f"status {body['status']} is not a deployment status")
            environment = next(
                (
                    e
                    for e in fake.environments.values()
                    if (e["repository"], e["name"]) == (repository, body["environment"])
                ),
                None,
            )
            if environment is None:  # GitLab makes it; forgebot makes it first, with its URL
                fake.violations.append(f"deployment to {body['environment']} before it exists")
            else:
                environment["state"] = "available"  # a deployment starts a stopped one again
            did = str(next(fake._ids))
            fake.deployments[did] = {
                "provider": "gitlab",
                "repository": repository,
                "ref": body["ref"],
                "sha": body["sha"],
                "environment": body["environment"],
                "statuses": [body["status"]],
                "urls": [],
            }
            return web.json_response(
                {"id": int(did), "status": body["status"], "sha": body["sha"]}, status=201
            )
        deployment = fake.deployments.get(rest[0]) if len(rest) == 1 else None
        if deployment is None or deployment["repository"] != repository:
            raise _Refused(404, "404 Deployment Not Found")
        if request.method == "PUT":
            _check_body(
                body,
                GITLAB_DEPLOYMENT_UPDATE_FIELDS,
                {"status"},
                "update a deployment",
                status=400,
            )
            if body["status"] not in GITLAB_DEPLOYMENT_STATUSES - {"running"}:
                raise _Refused(400, f"status {body['status']} cannot be set on a deployment")
            if deployment["statuses"][-1] != "running":
                raise _Refused(
                    400, f'Status cannot transition via "{body["status"]}" from a finished one'
                )
            deployment["statuses"].append(body["status"])
            return web.json_response({"id": int(rest[0]), "status": body["status"]})
        raise _Refused(404, "404 Not Found")

    async def github(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth not in (f"Bearer {fake.token}", f"token {fake.token}"):
            raise _Refused(401, "Bad credentials")
        if request.headers.get("Accept") != "application/vnd.github+json":
            raise _Refused(415, "Accept must be application/vnd.github+json")
        if request.headers.get("X-GitHub-Api-Version") not in GITHUB_API_VERSIONS:
            raise _Refused(400, "X-GitHub-Api-Version is required (a documented version)")
        body = await body_of(request)
        record("github", request, body)
        parts = request.match_info["tail"].strip("/").split("/")
        if len(parts) < 4 or parts[0] != "repos":
            raise _Refused(404, "Not Found")
        repository, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        method = request.method
        with fake.lock:
            answer = github_pulls(request, repository, rest, body)
            if answer is not None:
                return answer
            if (
                method == "POST"
                and len(rest) == 3
                and rest[0] == "issues"
                and rest[2] == "comments"
            ):
                _check_body(body, COMMENT_FIELDS, {"body"}, "create an issue comment")
                cid = str(next(fake._ids))
                fake.comments[cid] = {
                    "provider": "github",
                    "repository": repository,
                    "number": int(rest[1]),
                    "body": body["body"],
                    "edits": 0,
                }
                return web.json_response({"id": int(cid), "body": body["body"]}, status=201)
            if method == "PATCH" and rest[:2] == ["issues", "comments"] and len(rest) == 3:
                _check_body(body, COMMENT_FIELDS, {"body"}, "update an issue comment")
                comment = fake.comments.get(rest[2])
                if comment is None or comment["repository"] != repository:
                    raise _Refused(404, "Not Found")
                comment["body"] = body["body"]
                comment["edits"] += 1
                return web.json_response({"id": int(rest[2]), "body": body["body"]})
            if method == "POST" and rest == ["deployments"]:
                _check_body(body, DEPLOYMENT_FIELDS, {"ref"}, "create a deployment")
                did = str(next(fake._ids))
                fake.deployments[did] = {
                    "provider": "github",
                    "repository": repository,
                    "ref": body["ref"],
                    "environment": body.get("environment", "production"),
                    "transient": body.get("transient_environment", False),
                    "statuses": [],
                    "urls": [],
                }
                return web.json_response({"id": int(did), "ref": body["ref"]}, status=201)
            if (
                method == "POST"
                and len(rest) == 3
                and rest[0] == "deployments"
                and rest[2] == ("statuses")
            ):
                _check_body(body, STATUS_FIELDS, {"state"}, "create a deployment status")
                if body["state"] not in STATUS_STATES:
                    raise _Refused(422, f"state {body['state']} is not one of {STATUS_STATES}")
                deployment = fake.deployments.get(rest[1])
                if deployment is None or deployment["repository"] != repository:
                    raise _Refused(404, "Not Found")
                deployment["statuses"].append(body["state"])
                deployment["urls"].append(body.get("environment_url", ""))
                return web.json_response(
                    {"id": next(fake._ids), "state": body["state"]}, status=201
                )
            if method == "GET" and len(rest) == 3 and rest[0] == "pulls" and rest[2] == "commits":
                dates = fake.commits.get(("github", repository, int(rest[1])), [])
                per_page = int(request.query.get("per_page", "30"))
                return web.json_response(
                    [
                        {"sha": f"{i:040x}", "commit": {"author": {"date": d}}}
                        for i, d in (enumerate(dates[:per_page]))
                    ]
                )
        raise _Refused(404, "Not Found")

    async def gitlab(request: web.Request) -> web.Response:
        if request.headers.get("PRIVATE-TOKEN") != fake.token:
            raise _Refused(401, "401 Unauthorized")
        body = await body_of(request)
        record("gitlab", request, body)
        # The project's path is one URL-encoded segment: split the raw path before decoding.
        raw = request.rel_url.raw_path.removeprefix(GITLAB_PREFIX).strip("/").split("/")
        if len(raw) < 3 or raw[0] != "projects":
            raise _Refused(404, "404 Not Found")
        repository = unquote(raw[1])
        with fake.lock:
            if raw[2] == "environments":
                return gitlab_environments(request, repository, raw[3:], body)
            if raw[2] == "deployments":
                return gitlab_deployments(request, repository, raw[3:], body)
            if raw[2] != "merge_requests":
                raise _Refused(404, "404 Not Found")
            answer = gitlab_merge_requests(request, repository, raw[3:], body)
            if answer is not None:
                return answer
            if len(raw) < 5 or not raw[3].isdigit():
                raise _Refused(404, "404 Not Found")
            number, rest = int(raw[3]), raw[4:]
            if request.method == "POST" and rest == ["notes"]:
                _check_body(body, COMMENT_FIELDS, {"body"}, "create a note")
                nid = str(next(fake._ids))
                fake.comments[nid] = {
                    "provider": "gitlab",
                    "repository": repository,
                    "number": number,
                    "body": body["body"],
                    "edits": 0,
                }
                return web.json_response({"id": int(nid), "body": body["body"]}, status=201)
            if request.method == "PUT" and len(rest) == 2 and rest[0] == "notes":
                _check_body(body, COMMENT_FIELDS, {"body"}, "modify a note")
                note = fake.comments.get(rest[1])
                if note is None or note["repository"] != repository:
                    raise _Refused(404, "404 Not found")
                note["body"] = body["body"]
                note["edits"] += 1
                return web.json_response({"id": int(rest[1]), "body": body["body"]})
            if request.method == "GET" and rest == ["commits"]:
                dates = fake.commits.get(("gitlab", repository, number), [])
                return web.json_response(
                    [{"id": f"{i:040x}", "authored_date": d} for i, d in enumerate(dates)][::-1]
                )
        raise _Refused(404, "404 Not Found")

    app = web.Application(middlewares=[bookkeeping])
    app.router.add_route("*", GITHUB_PREFIX + "/{tail:.*}", github)
    app.router.add_route("*", GITLAB_PREFIX + "/{tail:.*}", gitlab)
    return app


@dataclass
class RunningFakeCodeHost:
    server: RunningServer
    state: FakeCodeHost

    @property
    def github_url(self) -> str:
        return self.server.url + GITHUB_PREFIX

    @property
    def gitlab_url(self) -> str:
        return self.server.url + GITLAB_PREFIX

    def stop(self) -> None:
        self.server.stop()


def start_fake_codehost(
    token: str,
    *,
    head_sha: Callable[[str, str], str] = _fake_head,
    merge: Callable[[str, str, str, str], str] = _fake_merge,
) -> RunningFakeCodeHost:
    fake = FakeCodeHost(token, head_sha, merge)
    return RunningFakeCodeHost(serve_in_thread(build_app(fake)), fake)


# --- webhook deliveries, as the code hosts send them (demo, tests, bench) ----------------------


def github_pull_request(
    repository: str,
    number: int,
    action: str,
    sha: str,
    updated_at: str,
    *,
    title: str = "A change",
    branch: str = "feature",
    author: str = "octocat",
    merged: bool = False,
    merge_commit_sha: str = "",
) -> dict[str, Any]:
    """The fields of a `pull_request` delivery that previews read (a real one has more)."""
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": "closed" if action == "closed" else "open",
            "title": title,
            "html_url": f"https://github.com/{repository}/pull/{number}",
            "user": {"login": author},
            "head": {"sha": sha, "ref": branch},
            "base": {"ref": "main"},
            "updated_at": updated_at,
            "merged": merged,
            "merged_at": updated_at if merged else None,
            "merge_commit_sha": merge_commit_sha or None,
        },
        "repository": {"full_name": repository},
        "sender": {"login": author},
    }


def gitlab_merge_request(
    repository: str,
    iid: int,
    action: str,
    sha: str,
    updated_at: str,
    *,
    title: str = "A change",
    branch: str = "feature",
    author: str = "tanuki",
    oldrev: str = "",
    merge_commit_sha: str = "",
) -> dict[str, Any]:
    """The fields of a `Merge Request Hook` delivery that previews read."""
    attributes: dict[str, Any] = {
        "iid": iid,
        "title": title,
        "url": f"https://gitlab.example.com/{repository}/-/merge_requests/{iid}",
        "source_branch": branch,
        "target_branch": "main",
        "action": action,
        "state": "merged" if action == "merge" else "closed" if action == "close" else "opened",
        "updated_at": updated_at,
        "last_commit": {"id": sha, "timestamp": updated_at},
        "merge_commit_sha": merge_commit_sha or None,
    }
    if oldrev:
        attributes["oldrev"] = oldrev
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"username": author},
        "project": {"path_with_namespace": repository},
        "object_attributes": attributes,
    }
