"""The GitLab REST API calls previews make: merge request notes and commits
(https://docs.gitlab.com/ee/api/notes.html). GitLab environments are not driven from here."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from integrations.codehost.host import DeploymentState
from integrations.codehost.rest import gitlab_rest
from integrations.codehost.webhooks import MalformedWebhook, parse_time


def project_id(repository: str) -> str:
    """A project's path as the API takes it in place of its numeric id: URL-encoded."""
    return quote(repository, safe="")


class GitLabClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.rest = gitlab_rest(base_url, token, timeout=timeout)

    async def upsert_comment(self, repository: str, number: int, comment_id: str, body: str) -> str:
        base = f"projects/{project_id(repository)}/merge_requests/{number}/notes"
        if comment_id:
            await self.rest.call("PUT", f"{base}/{comment_id}", "notes.update", {"body": body})
            return comment_id
        created: dict[str, Any] = await self.rest.call("POST", base, "notes.create", {"body": body})
        return str(created["id"])

    async def create_deployment(
        self, repository: str, sha: str, environment: str, description: str
    ) -> str:
        return ""

    async def deployment_status(
        self,
        repository: str,
        deployment_id: str,
        state: DeploymentState,
        environment_url: str,
        description: str,
    ) -> None:
        return None

    async def first_commit_time(self, repository: str, number: int) -> datetime | None:
        commits = await self.rest.call(
            "GET",
            f"projects/{project_id(repository)}/merge_requests/{number}/commits?per_page=100",
            "merge_requests.commits",
        )
        if not isinstance(commits, list) or not commits:
            return None
        # Newest first; the first commit is the last one listed.
        try:
            return parse_time(commits[-1]["authored_date"], "authored_date")
        except (KeyError, TypeError, MalformedWebhook):
            return None

    async def close(self) -> None:
        await self.rest.close()
