"""The GitHub REST API calls previews make: issue comments, deployments and their statuses,
and a pull request's commits (https://docs.github.com/en/rest)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from integrations.codehost.host import DeploymentState
from integrations.codehost.rest import github_rest
from integrations.codehost.webhooks import MalformedWebhook, parse_time


class GitHubClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.rest = github_rest(base_url, token, timeout=timeout)

    async def upsert_comment(self, repository: str, number: int, comment_id: str, body: str) -> str:
        if comment_id:
            await self.rest.call(
                "PATCH",
                f"repos/{repository}/issues/comments/{comment_id}",
                "issues.update_comment",
                {"body": body},
            )
            return comment_id
        created: dict[str, Any] = await self.rest.call(
            "POST",
            f"repos/{repository}/issues/{number}/comments",
            "issues.create_comment",
            {"body": body},
        )
        return str(created["id"])

    async def create_deployment(
        self,
        repository: str,
        sha: str,
        environment: str,
        description: str,
        *,
        ref: str = "",
        url: str = "",
    ) -> str:
        created: dict[str, Any] = await self.rest.call(
            "POST",
            f"repos/{repository}/deployments",
            "repos.create_deployment",
            {
                "ref": sha,
                "environment": environment,
                "description": description[:140],
                "auto_merge": False,
                "required_contexts": [],
                "transient_environment": True,
                "production_environment": False,
            },
        )
        return str(created["id"])

    async def deployment_status(
        self,
        repository: str,
        deployment_id: str,
        state: DeploymentState,
        environment_url: str,
        description: str,
    ) -> None:
        if not deployment_id:
            return
        body: dict[str, Any] = {
            "state": state.value,
            "description": description[:140],
            "auto_inactive": True,
        }
        if environment_url:
            body["environment_url"] = environment_url
        await self.rest.call(
            "POST",
            f"repos/{repository}/deployments/{deployment_id}/statuses",
            "repos.create_deployment_status",
            body,
        )

    async def first_commit_time(self, repository: str, number: int) -> datetime | None:
        commits = await self.rest.call(
            "GET", f"repos/{repository}/pulls/{number}/commits?per_page=1", "pulls.list_commits"
        )
        if not isinstance(commits, list) or not commits:
            return None
        try:
            return parse_time(commits[0]["commit"]["author"]["date"], "commit.author.date")
        except (KeyError, TypeError, MalformedWebhook):
            return None

    async def close(self) -> None:
        await self.rest.close()
