"""A loopback fake of the GitHub pull-request and GitLab merge-request REST APIs, for the tests.

It serves the calls `integrations.codehost.pull_requests` makes and checks their documented
shapes: the authentication and version headers, the required JSON fields and their types (a
GitHub 422 `Validation Failed` or a GitLab 400 otherwise), the merge's `sha` against the head
(409, as both APIs answer when the head moved). Branches and merges are real: the owner of the
fake passes `head_sha` (the branch's commit on the Git server) and `merge` (makes the merge
commit on the Git server), so a merged pull request moves the real branch the GitOps
controller follows. `approve` plays a reviewer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from integrations.sandbox.server_thread import RunningServer, serve_in_thread


@dataclass
class FakePull:
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
class PullRequestState:
    token: str
    head_sha: Callable[[str, str], str]
    """(repository path, branch) -> the branch's commit on the Git server."""
    merge: Callable[[str, str, str, str], str]
    """(repository path, head, base, message) -> the merge commit on base."""
    pulls: list[FakePull] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def approve(self, number: int, reviewer: str) -> None:
        with self.lock:
            pull = next(p for p in self.pulls if p.number == number)
            pull.approved_by.append(reviewer)

    def close(self, number: int) -> None:
        with self.lock:
            next(p for p in self.pulls if p.number == number).state = "closed"


def _require(body: Any, fields: dict[str, type]) -> list[str]:
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    return [
        f"{name} must be a {kind.__name__}"
        for name, kind in fields.items()
        if not isinstance(body.get(name), kind)
    ]


def build_app(state: PullRequestState) -> web.Application:
    routes = web.RouteTableDef()

    def github_auth(request: web.Request) -> None:
        state.requests.append((request.method, request.path_qs))
        if request.headers.get("Authorization") != f"Bearer {state.token}":
            raise web.HTTPUnauthorized(
                text='{"message": "Bad credentials"}', content_type="application/json"
            )
        if request.headers.get("X-GitHub-Api-Version") != "2022-11-28" or (
            request.headers.get("Accept") != "application/vnd.github+json"
        ):
            raise web.HTTPBadRequest(
                text='{"message": "missing API version or Accept header"}',
                content_type="application/json",
            )

    def gitlab_auth(request: web.Request) -> None:
        state.requests.append((request.method, request.path_qs))
        if request.headers.get("PRIVATE-TOKEN") != state.token:
            raise web.HTTPUnauthorized(
                text='{"message": "401 Unauthorized"}', content_type="application/json"
            )

    def pull(repo: str, number: str) -> FakePull:
        found = next((p for p in state.pulls if p.repo == repo and p.number == int(number)), None)
        if found is None:
            raise web.HTTPNotFound(text='{"message": "Not Found"}', content_type="application/json")
        return found

    def github_json(p: FakePull) -> dict[str, Any]:
        return {
            "number": p.number,
            "html_url": f"https://github.example/{p.repo}/pull/{p.number}",
            "state": "closed" if p.state != "open" else "open",
            "merged": p.state == "merged",
            "merged_at": "2026-12-01T12:00:00Z" if p.state == "merged" else None,
            "merge_commit_sha": p.merge_commit,
            "head": {"ref": p.head, "sha": state.head_sha(p.repo, p.head)},
            "base": {"ref": p.base},
            "title": p.title,
        }

    def gitlab_json(p: FakePull) -> dict[str, Any]:
        return {
            "iid": p.number,
            "web_url": f"https://gitlab.example/{p.repo}/-/merge_requests/{p.number}",
            "state": {"open": "opened"}.get(p.state, p.state),
            "merge_commit_sha": p.merge_commit,
            "sha": state.head_sha(p.repo, p.head),
            "source_branch": p.head,
            "target_branch": p.base,
            "title": p.title,
        }

    def create(repo: str, head: str, base: str, title: str, body: str) -> FakePull:
        with state.lock:
            if any(p.repo == repo and p.head == head and p.state == "open" for p in state.pulls):
                raise web.HTTPUnprocessableEntity(
                    text='{"message": "A pull request already exists"}',
                    content_type="application/json",
                )
            created = FakePull(len(state.pulls) + 1, repo, head, base, title, body)
            state.pulls.append(created)
            return created

    def do_merge(p: FakePull, sha: Any, message: str) -> str:
        if p.state != "open":
            raise web.HTTPMethodNotAllowed(
                "PUT", ["GET"], text='{"message": "Pull Request is not mergeable"}'
            )
        if sha != state.head_sha(p.repo, p.head):
            raise web.HTTPConflict(
                text='{"message": "Head branch was modified. Review and try the merge again."}',
                content_type="application/json",
            )
        p.merge_commit = state.merge(p.repo, p.head, p.base, message)
        p.state = "merged"
        return p.merge_commit

    # --- GitHub ------------------------------------------------------------------------------
    @routes.get("/repos/{owner}/{repo}/pulls")
    async def gh_list(request: web.Request) -> web.Response:
        github_auth(request)
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        head = request.query.get("head", "")
        owner, _, branch = head.partition(":")
        if not branch or owner != request.match_info["owner"]:
            raise web.HTTPUnprocessableEntity(text='{"message": "head must be owner:branch"}')
        found = [github_json(p) for p in state.pulls if p.repo == repo and p.head == branch]
        return web.json_response(found[::-1])

    @routes.post("/repos/{owner}/{repo}/pulls")
    async def gh_create(request: web.Request) -> web.Response:
        github_auth(request)
        body = await request.json()
        problems = _require(body, {"title": str, "head": str, "base": str})
        if problems:
            return web.json_response(
                {"message": "Validation Failed", "errors": problems}, status=422
            )
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        created = create(repo, body["head"], body["base"], body["title"], body.get("body") or "")
        return web.json_response(github_json(created), status=201)

    @routes.get("/repos/{owner}/{repo}/pulls/{number}")
    async def gh_get(request: web.Request) -> web.Response:
        github_auth(request)
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        return web.json_response(github_json(pull(repo, request.match_info["number"])))

    @routes.get("/repos/{owner}/{repo}/pulls/{number}/reviews")
    async def gh_reviews(request: web.Request) -> web.Response:
        github_auth(request)
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        p = pull(repo, request.match_info["number"])
        return web.json_response(
            [{"user": {"login": who}, "state": "APPROVED"} for who in p.approved_by]
        )

    @routes.put("/repos/{owner}/{repo}/pulls/{number}/merge")
    async def gh_merge(request: web.Request) -> web.Response:
        github_auth(request)
        body = await request.json()
        problems = _require(body, {"sha": str, "merge_method": str})
        if problems or body["merge_method"] not in ("merge", "squash", "rebase"):
            return web.json_response(
                {"message": "Validation Failed", "errors": problems}, status=422
            )
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        p = pull(repo, request.match_info["number"])
        sha = do_merge(p, body["sha"], str(body.get("commit_title") or p.title))
        return web.json_response({"sha": sha, "merged": True, "message": "Pull Request merged"})

    # --- GitLab ------------------------------------------------------------------------------
    @routes.get("/api/v4/projects/{project}/merge_requests")
    async def gl_list(request: web.Request) -> web.Response:
        gitlab_auth(request)
        repo = unquote(request.match_info["project"])
        branch = request.query.get("source_branch", "")
        found = [gitlab_json(p) for p in state.pulls if p.repo == repo and p.head == branch]
        return web.json_response(found[::-1])

    @routes.post("/api/v4/projects/{project}/merge_requests")
    async def gl_create(request: web.Request) -> web.Response:
        gitlab_auth(request)
        body = await request.json()
        problems = _require(body, {"source_branch": str, "target_branch": str, "title": str})
        if problems:
            return web.json_response({"message": problems}, status=400)
        created = create(
            unquote(request.match_info["project"]),
            body["source_branch"],
            body["target_branch"],
            body["title"],
            body.get("description") or "",
        )
        return web.json_response(gitlab_json(created), status=201)

    @routes.get("/api/v4/projects/{project}/merge_requests/{iid}")
    async def gl_get(request: web.Request) -> web.Response:
        gitlab_auth(request)
        p = pull(unquote(request.match_info["project"]), request.match_info["iid"])
        return web.json_response(gitlab_json(p))

    @routes.get("/api/v4/projects/{project}/merge_requests/{iid}/approvals")
    async def gl_approvals(request: web.Request) -> web.Response:
        gitlab_auth(request)
        p = pull(unquote(request.match_info["project"]), request.match_info["iid"])
        return web.json_response(
            {
                "approved": bool(p.approved_by),
                "approved_by": [{"user": {"username": u}} for u in p.approved_by],
            }
        )

    @routes.put("/api/v4/projects/{project}/merge_requests/{iid}/merge")
    async def gl_merge(request: web.Request) -> web.Response:
        gitlab_auth(request)
        body = await request.json()
        problems = _require(body, {"sha": str})
        if problems:
            return web.json_response({"message": problems}, status=400)
        p = pull(unquote(request.match_info["project"]), request.match_info["iid"])
        sha = do_merge(p, body["sha"], str(body.get("merge_commit_message") or p.title))
        return web.json_response({**gitlab_json(p), "merge_commit_sha": sha})

    app = web.Application()
    app.add_routes(routes)
    return app


@dataclass
class RunningPullRequestApi:
    server: RunningServer
    state: PullRequestState

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()


def start_pull_request_api(state: PullRequestState) -> RunningPullRequestApi:
    return RunningPullRequestApi(serve_in_thread(build_app(state)), state)
