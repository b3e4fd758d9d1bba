"""What forgebot asks of a code host about one pull request, whichever host it is."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol


class DeploymentState(StrEnum):
    """GitHub's deployment status states that previews use (each host maps them to its
    own: GitLab's deployment `running`, `success`, `failed`, and a stopped environment)."""

    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    INACTIVE = "inactive"


class CodeHost(Protocol):
    async def upsert_comment(self, repository: str, number: int, comment_id: str, body: str) -> str:
        """Create the pull request's comment, or edit it in place when `comment_id` is given;
        returns the comment's id."""
        ...

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
        """Mark `sha` (of branch `ref`) as being deployed to `environment` (its address
        `url`); returns the deployment's id, opaque to the caller ('' when the host has no such
        API)."""
        ...

    async def deployment_status(
        self,
        repository: str,
        deployment_id: str,
        state: DeploymentState,
        environment_url: str,
        description: str,
    ) -> None: ...

    async def first_commit_time(self, repository: str, number: int) -> datetime | None:
        """When the pull request's first commit was authored (DORA lead time starts there)."""
        ...

    async def close(self) -> None: ...
