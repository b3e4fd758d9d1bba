"""Pull requests (GitHub) and merge requests (GitLab) for GitOps deploys that land by review.

One small protocol, `PullRequests`, over the two REST APIs, with the documented request shapes:

- GitHub (REST, `X-GitHub-Api-Version: 2022-11-28`, `Authorization: Bearer`):
  `GET /repos/{owner}/{repo}/pulls?head={owner}:{branch}&state=all` (find),
  `POST /repos/{owner}/{repo}/pulls` with `title`, `head`, `base`, `body` (open),
  `GET .../pulls/{number}` (state, `merged`, `merge_commit_sha`),
  `GET .../pulls/{number}/reviews` (`state: APPROVED`),
  `PUT .../pulls/{number}/merge` with `sha` and `merge_method` (merge).
- GitLab (v4, `PRIVATE-TOKEN`): `GET /projects/{path}/merge_requests?source_branch=` (find),
  `POST /projects/{path}/merge_requests` with `source_branch`, `target_branch`, `title`,
  `description`, `remove_source_branch` (open), `GET .../merge_requests/{iid}`,
  `GET .../merge_requests/{iid}/approvals` (`approved_by`), `PUT .../merge_requests/{iid}/merge`
  with `sha` and `should_remove_source_branch` (merge). `{path}` is the URL-encoded project path.

Opening is safe to retry: the REST client retries a 5xx, and when the first attempt had created
the pull request before its answer was lost, the retry is refused as a duplicate (GitHub 422,
GitLab 409); `open` then finds the open one by its head branch (ours, named after the
operation) and adopts it.

The API base defaults from the repository's host (`https://api.github.com`,
`https://gitlab.com/api/v4`) and is set in the catalog for self-hosted instances. The calls go
through the code hosts' one REST client (`integrations.codehost.rest`): headers, timeouts,
retries and the mapping of refusals to forgebot's errors live there; the token never appears in
a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit

from integrations.codehost.rest import CodeHostConflict, github_rest, gitlab_rest

Provider = Literal["github", "gitlab"]
TIMEOUT = 15.0


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    state: Literal["open", "merged", "closed"]
    head_sha: str
    merge_commit: str | None
    approved_by: tuple[str, ...] = ()


class PullRequests(Protocol):
    async def find(self, head: str) -> PullRequest | None: ...

    async def open(self, head: str, base: str, title: str, body: str) -> PullRequest: ...

    async def get(self, number: int) -> PullRequest: ...

    async def merge(self, number: int, sha: str, message: str) -> str: ...

    async def close(self) -> None: ...


def repository_path(repository: str) -> str:
    """`owner/repo` (GitHub) or `group/sub/project` (GitLab) from the HTTPS URL."""
    path = urlsplit(repository).path.strip("/")
    return path.removesuffix(".git")


def default_api(provider: Provider, repository: str) -> str:
    host = urlsplit(repository).netloc
    if provider == "github":
        return "https://api.github.com" if host == "github.com" else f"https://{host}/api/v3"
    return f"https://{host}/api/v4"


class GitHubPullRequests:
    def __init__(self, repository: str, token: str, api: str | None = None) -> None:
        self.repo = repository_path(repository)
        self.owner = self.repo.split("/", 1)[0]
        self.rest = github_rest(api or default_api("github", repository), token, timeout=TIMEOUT)

    async def _pull(self, data: dict[str, Any]) -> PullRequest:
        number = int(data["number"])
        state: Literal["open", "merged", "closed"] = (
            "merged" if data.get("merged") or data.get("merged_at") else data["state"]
        )
        reviews = await self.rest.call(
            "GET", f"/repos/{self.repo}/pulls/{number}/reviews", "pulls.list_reviews"
        )
        latest: dict[str, str] = {}
        for review in reviews:  # the latest review of each person counts
            latest[str(review["user"]["login"])] = str(review["state"])
        return PullRequest(
            number,
            str(data["html_url"]),
            state,
            str(data["head"]["sha"]),
            data.get("merge_commit_sha") if state == "merged" else None,
            tuple(sorted(u for u, s in latest.items() if s == "APPROVED")),
        )

    async def find(self, head: str) -> PullRequest | None:
        found = await self.rest.call(
            "GET",
            f"/repos/{self.repo}/pulls",
            "pulls.list",
            query={"head": f"{self.owner}:{head}", "state": "all"},
        )
        return await self._pull(found[0]) if found else None

    async def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        try:
            data = await self.rest.call(
                "POST",
                f"/repos/{self.repo}/pulls",
                "pulls.create",
                {"title": title, "head": head, "base": base, "body": body},
            )
        except CodeHostConflict:  # 422 "A pull request already exists for ..."
            return await adopt(self, head)
        return await self._pull(data)

    async def get(self, number: int) -> PullRequest:
        return await self._pull(
            await self.rest.call("GET", f"/repos/{self.repo}/pulls/{number}", "pulls.get")
        )

    async def merge(self, number: int, sha: str, message: str) -> str:
        data = await self.rest.call(
            "PUT",
            f"/repos/{self.repo}/pulls/{number}/merge",
            "pulls.merge",
            {"sha": sha, "merge_method": "merge", "commit_title": message},
        )
        return str(data["sha"])

    async def close(self) -> None:
        await self.rest.close()


class GitLabMergeRequests:
    def __init__(self, repository: str, token: str, api: str | None = None) -> None:
        self.project = quote(repository_path(repository), safe="")
        self.rest = gitlab_rest(api or default_api("gitlab", repository), token, timeout=TIMEOUT)

    async def _merge_request(self, data: dict[str, Any]) -> PullRequest:
        iid = int(data["iid"])
        approvals = await self.rest.call(
            "GET",
            f"/projects/{self.project}/merge_requests/{iid}/approvals",
            "merge_requests.approvals",
        )
        state = {"opened": "open", "merged": "merged", "closed": "closed", "locked": "open"}[
            str(data["state"])
        ]
        return PullRequest(
            iid,
            str(data["web_url"]),
            state,  # type: ignore[arg-type]
            str(data["sha"]),
            data.get("merge_commit_sha") if state == "merged" else None,
            tuple(sorted(str(a["user"]["username"]) for a in approvals.get("approved_by") or [])),
        )

    async def find(self, head: str) -> PullRequest | None:
        found = await self.rest.call(
            "GET",
            f"/projects/{self.project}/merge_requests",
            "merge_requests.list",
            query={"source_branch": head},
        )
        return await self._merge_request(found[0]) if found else None

    async def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        try:
            data = await self.rest.call(
                "POST",
                f"/projects/{self.project}/merge_requests",
                "merge_requests.create",
                {
                    "source_branch": head,
                    "target_branch": base,
                    "title": title,
                    "description": body,
                    "remove_source_branch": True,
                },
            )
        except CodeHostConflict:  # 409 "Another open merge request already exists ..."
            return await adopt(self, head)
        return await self._merge_request(data)

    async def get(self, number: int) -> PullRequest:
        return await self._merge_request(
            await self.rest.call(
                "GET", f"/projects/{self.project}/merge_requests/{number}", "merge_requests.get"
            )
        )

    async def merge(self, number: int, sha: str, message: str) -> str:
        data = await self.rest.call(
            "PUT",
            f"/projects/{self.project}/merge_requests/{number}/merge",
            "merge_requests.merge",
            {"sha": sha, "should_remove_source_branch": True, "merge_commit_message": message},
        )
        return str(data.get("merge_commit_sha") or "")

    async def close(self) -> None:
        await self.rest.close()


async def adopt(api: PullRequests, head: str) -> PullRequest:
    """The create was refused as a duplicate: when the open one is ours (its head is the
    branch we pushed, named after our operation), it is the pull request we meant to open. A
    create retried after a 5xx whose first attempt did create it ends here."""
    found = await api.find(head)
    if found is None or found.state != "open":
        raise CodeHostConflict(
            409, f"the code host refused to open a pull request from {head}, and none is open"
        )
    return found


def pull_requests(
    provider: Provider, repository: str, token: str, api: str | None = None
) -> PullRequests:
    if provider == "github":
        return GitHubPullRequests(repository, token, api)
    return GitLabMergeRequests(repository, token, api)
