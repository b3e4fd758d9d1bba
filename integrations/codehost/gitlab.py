"""The GitLab REST API calls previews make: merge request notes and commits
(https://docs.gitlab.com/ee/api/notes.html), and the preview's environment and deployments,
as GitHub's deployment statuses do (https://docs.gitlab.com/ee/api/environments.html,
https://docs.gitlab.com/ee/api/deployments.html):

- `GET /projects/:id/environments?name=` finds the environment, `POST .../environments`
  (`name`, `external_url`, `tier`) makes it, `PUT .../environments/:environment_id`
  (`external_url`) points it at the preview's address, `POST .../environments/:id/stop`
  stops it when the merge request is closed or merged;
- `POST /projects/:id/deployments` (`environment`, `sha`, `ref`, `tag`, `status: running`)
  starts a deployment of the head SHA, `PUT .../deployments/:deployment_id` (`status:
  success|failed`) ends it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from integrations.codehost.host import DeploymentState
from integrations.codehost.rest import CodeHostError, gitlab_rest
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
        self,
        repository: str,
        sha: str,
        environment: str,
        description: str,
        *,
        ref: str = "",
        url: str = "",
    ) -> str:
        """The environment (made, or its `external_url` brought up to date), then a
        deployment of `sha` to it, `running`. The id is `<deployment>:<environment>`: a
        status moves the deployment, a stop needs the environment."""
        project = project_id(repository)
        environment_id = await self._environment(project, environment, url)
        created: dict[str, Any] = await self.rest.call(
            "POST",
            f"projects/{project}/deployments",
            "deployments.create",
            {
                "environment": environment,
                "sha": sha,
                "ref": ref or sha,
                "tag": False,
                "status": "running",
            },
        )
        return f"{created['id']}:{environment_id}"

    async def _environment(self, project: str, name: str, url: str) -> str:
        found = await self.rest.call(
            "GET", f"projects/{project}/environments", "environments.list", query={"name": name}
        )
        existing = next((e for e in found or [] if e.get("name") == name), None)
        if existing is None:
            body: dict[str, Any] = {"name": name, "tier": "development"}
            if url:
                body["external_url"] = url
            try:
                created = await self.rest.call(
                    "POST", f"projects/{project}/environments", "environments.create", body
                )
                return str(created["id"])
            except CodeHostError as exc:  # made meanwhile (400 "has already been taken")
                if exc.status != 400:
                    raise
                return await self._environment(project, name, url)
        if url and existing.get("external_url") != url:
            await self._set_url(project, str(existing["id"]), url)
        return str(existing["id"])

    async def _set_url(self, project: str, environment_id: str, url: str) -> None:
        await self.rest.call(
            "PUT",
            f"projects/{project}/environments/{environment_id}",
            "environments.update",
            {"external_url": url},
        )

    async def deployment_status(
        self,
        repository: str,
        deployment_id: str,
        state: DeploymentState,
        environment_url: str,
        description: str,
    ) -> None:
        deployment, _, environment = deployment_id.partition(":")
        if not deployment:
            return
        project = project_id(repository)
        if state is DeploymentState.IN_PROGRESS:
            return  # created `running`
        if state is DeploymentState.INACTIVE:
            if environment:
                await self.rest.call(
                    "POST",
                    f"projects/{project}/environments/{environment}/stop",
                    "environments.stop",
                    {},
                )
            return
        status = "success" if state is DeploymentState.SUCCESS else "failed"
        await self.rest.call(
            "PUT",
            f"projects/{project}/deployments/{deployment}",
            "deployments.update",
            {"status": status},
        )
        if status == "success" and environment_url and environment:
            await self._set_url(project, environment, environment_url)

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
