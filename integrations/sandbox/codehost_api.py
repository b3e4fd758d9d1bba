"""A loopback fake of the GitHub and GitLab REST APIs that previews use, for the demo, the
tests and the bench.

GitHub lives under `/github` (issue comments, deployments and deployment statuses, a pull
request's commits), GitLab under `/gitlab/api/v4` (merge request notes and commits). Each
request is checked against the documented shape: the authentication header, GitHub's `Accept`
and API version headers, a JSON object body with the required fields of the right types and
no field the API does not document; a request that breaks it is answered 4xx the way the real
API would and kept in `violations`. Thread-safe: tests read the state from their own loop.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
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


@dataclass
class Call:
    provider: str
    method: str
    path: str
    body: Any


@dataclass
class FakeCodeHost:
    token: str
    latency: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)
    calls: list[Call] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    comments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """id -> {provider, repository, number, body, edits}"""
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    """id -> {repository, ref, environment, statuses: [state, ...]}"""
    commits: dict[tuple[str, str, int], list[str]] = field(default_factory=dict)
    """(provider, repository, number) -> ISO author dates, oldest first."""
    errors_500: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.violations.clear()
            self.comments.clear()
            self.deployments.clear()
            self.commits.clear()
            self.errors_500 = 0
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

    def count(self, method: str, fragment: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c.method == method and fragment in c.path)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _check_body(body: Any, fields: dict[str, Any], required: set[str], what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Refused(400, f"{what}: the body must be a JSON object")
    for name in required:
        if name not in body:
            raise _Refused(422, f"{what}: {name} is required")
    for name, value in body.items():
        if name not in fields:
            raise _Refused(422, f"{what}: {name} is not a documented parameter")
        if not isinstance(value, fields[name]):
            raise _Refused(422, f"{what}: {name} has the wrong type")
    return body


def build_app(fake: FakeCodeHost) -> web.Application:
    @web.middleware
    async def bookkeeping(request: web.Request, handler: Any) -> web.StreamResponse:
        with fake.lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
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

    async def github(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if auth not in (f"Bearer {fake.token}", f"token {fake.token}"):
            raise _Refused(401, "Bad credentials")
        if request.headers.get("Accept") != "application/vnd.github+json":
            raise _Refused(415, "Accept must be application/vnd.github+json")
        if not request.headers.get("X-GitHub-Api-Version"):
            raise _Refused(400, "X-GitHub-Api-Version is required")
        body = await body_of(request)
        record("github", request, body)
        parts = request.match_info["tail"].strip("/").split("/")
        if len(parts) < 4 or parts[0] != "repos":
            raise _Refused(404, "Not Found")
        repository, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        method = request.method
        with fake.lock:
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
        if len(raw) < 5 or raw[0] != "projects" or raw[2] != "merge_requests":
            raise _Refused(404, "404 Not Found")
        repository, number, rest = unquote(raw[1]), int(raw[3]), raw[4:]
        with fake.lock:
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


def start_fake_codehost(token: str) -> RunningFakeCodeHost:
    fake = FakeCodeHost(token)
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
