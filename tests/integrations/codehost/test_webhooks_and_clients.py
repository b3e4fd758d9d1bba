"""Webhook verification and parsing, and the REST clients against the loopback fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.errors import Conflict, DependencyUnavailable, NotFound
from integrations.codehost.github import GitHubClient
from integrations.codehost.gitlab import GitLabClient
from integrations.codehost.host import DeploymentState
from integrations.codehost.pull_requests import pull_requests
from integrations.codehost.rest import CodeHostError
from integrations.codehost.webhooks import (
    Change,
    MalformedWebhook,
    github_signature,
    parse_github,
    parse_gitlab,
    verify_github,
    verify_gitlab,
)
from integrations.sandbox.codehost_api import (
    RunningFakeCodeHost,
    github_pull_request,
    gitlab_merge_request,
    start_fake_codehost,
)

TOKEN = "fake-token-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[RunningFakeCodeHost]:
    running = start_fake_codehost(TOKEN)
    yield running
    running.stop()


def test_github_signatures_are_checked_on_the_raw_body() -> None:
    body = b'{"action": "opened"}'
    good = {"X-Hub-Signature-256": github_signature("s3cret", body)}
    assert verify_github("s3cret", good, body)
    assert not verify_github("s3cret", good, body + b" ")
    assert not verify_github("other", good, body)
    assert not verify_github("s3cret", {}, body)
    assert not verify_github("", good, body)
    assert verify_gitlab("tok", {"X-Gitlab-Token": "tok"})
    assert not verify_gitlab("tok", {"X-Gitlab-Token": "tok2"})
    assert not verify_gitlab("", {"X-Gitlab-Token": ""})


def test_github_actions_map_to_up_down_or_nothing() -> None:
    sha = "a" * 40
    event = parse_github(
        json.dumps(
            github_pull_request("o/r", 3, "synchronize", sha, "2026-11-24T10:00:00Z")
        ).encode()
    )
    assert event is not None and event.change is Change.UP and event.number == 3
    assert event.at == datetime(2026, 11, 24, 10, tzinfo=UTC)
    merged = parse_github(
        json.dumps(
            github_pull_request(
                "o/r",
                3,
                "closed",
                sha,
                "2026-11-24T11:00:00Z",
                merged=True,
                merge_commit_sha="B" * 40,
            )
        ).encode()
    )
    assert merged is not None and merged.change is Change.DOWN and merged.merged
    assert merged.merge_commit_sha == "b" * 40
    labeled = github_pull_request("o/r", 3, "labeled", sha, "2026-11-24T10:00:00Z")
    assert parse_github(json.dumps(labeled).encode()) is None
    with pytest.raises(MalformedWebhook, match="updated_at"):
        broken = github_pull_request("o/r", 3, "opened", sha, "yesterday")
        parse_github(json.dumps(broken).encode())


def test_gitlab_hooks_with_either_time_format() -> None:
    sha = "c" * 40
    hook = gitlab_merge_request("g/p", 4, "update", sha, "2026-11-24 10:00:00 UTC", oldrev="d" * 40)
    event = parse_gitlab(json.dumps(hook).encode())
    assert event is not None and event.change is Change.UP
    assert event.at == datetime(2026, 11, 24, 10, tzinfo=UTC)
    not_a_push = gitlab_merge_request("g/p", 4, "update", sha, "2026-11-24T10:00:00Z")
    assert parse_gitlab(json.dumps(not_a_push).encode()) is None
    with pytest.raises(MalformedWebhook, match="object_kind"):
        parse_gitlab(b'{"object_kind": "push"}')


async def test_clients_make_the_documented_calls(fake: RunningFakeCodeHost) -> None:
    fake.state.reset()
    github = GitHubClient(fake.github_url, TOKEN)
    gitlab = GitLabClient(fake.gitlab_url, TOKEN)
    try:
        comment = await github.upsert_comment("o/r", 5, "", "first")
        assert await github.upsert_comment("o/r", 5, comment, "second") == comment
        [stored] = fake.state.comments_on("github", "o/r", 5)
        assert stored["body"] == "second" and stored["edits"] == 1
        deployment = await github.create_deployment("o/r", "e" * 40, "pr-r-5", "preview")
        await github.deployment_status(
            "o/r", deployment, DeploymentState.SUCCESS, "https://x.example.com", "ready"
        )
        assert fake.state.deployments_of("o/r")[0]["statuses"] == ["success"]
        note = await gitlab.upsert_comment("group/sub/project", 6, "", "note")
        assert await gitlab.upsert_comment("group/sub/project", 6, note, "edited") == note
        assert fake.state.comments_on("gitlab", "group/sub/project", 6)[0]["body"] == "edited"
        fake.state.commits[("gitlab", "group/sub/project", 6)] = [
            "2026-11-20T08:00:00Z",
            "2026-11-21T08:00:00Z",
        ]
        assert await gitlab.first_commit_time("group/sub/project", 6) == datetime(
            2026, 11, 20, 8, tzinfo=UTC
        )
        # 5xx answers are retried; a 4xx is the caller's problem and says so.
        fake.state.errors_500 = 1
        assert await github.upsert_comment("o/r", 5, comment, "third") == comment
        with pytest.raises(CodeHostError) as refused:
            await github.upsert_comment("o/r", 5, "999999", "x")
        assert refused.value.status == 404
        fake.state.errors_500 = 10
        github.rest._backoff = 0.01
        with pytest.raises(DependencyUnavailable):
            await github.upsert_comment("o/r", 5, comment, "fourth")
        fake.state.errors_500 = 0
        assert fake.state.violations == [
            "PATCH /github/repos/o/r/issues/comments/999999: Not Found"
        ]
    finally:
        await github.close()
        await gitlab.close()


async def test_the_fake_refuses_undocumented_shapes(fake: RunningFakeCodeHost) -> None:
    fake.state.reset()
    wrong = GitHubClient(fake.github_url, "not-the-token")
    try:
        with pytest.raises(CodeHostError) as refused:
            await wrong.upsert_comment("o/r", 1, "", "x")
        assert refused.value.status == 401
    finally:
        await wrong.close()
    client = GitHubClient(fake.github_url, TOKEN)
    try:
        with pytest.raises(CodeHostError, match="not a documented parameter"):
            await client.rest.call(
                "POST", "repos/o/r/issues/1/comments", "x", {"body": "b", "colour": "red"}
            )
    finally:
        await client.close()
        fake.state.reset()


async def test_pull_requests_use_the_same_client_and_fake(fake: RunningFakeCodeHost) -> None:
    fake.state.reset()
    github = pull_requests("github", "https://github.com/o/r", TOKEN, fake.github_url)
    gitlab = pull_requests("gitlab", "https://gitlab.com/g/sub/p", TOKEN, fake.gitlab_url)
    try:
        opened = await github.open("feature", "main", "A change", "why")
        assert await github.find("feature") == opened and opened.state == "open"
        fake.state.approve(opened.number, "alice")
        assert (await github.get(opened.number)).approved_by == ("alice",)
        with pytest.raises(Conflict):  # the head moved: 409
            await github.merge(opened.number, "0" * 40, "merge it")
        assert await github.merge(opened.number, opened.head_sha, "merge it")
        merged = await github.get(opened.number)
        assert merged.state == "merged" and merged.merge_commit
        with pytest.raises(NotFound):
            await github.get(99)
        mr = await gitlab.open("feature", "main", "A change", "why")
        assert mr.url.endswith(f"/g/sub/p/-/merge_requests/{mr.number}")
        assert await gitlab.find("feature") == mr
        assert (
            "GET",
            "/gitlab/api/v4/projects/g%2Fsub%2Fp/merge_requests?source_branch=feature",
        ) in fake.state.requests
        assert await gitlab.merge(mr.number, mr.head_sha, "merge it")
        assert (await gitlab.get(mr.number)).state == "merged"
        assert fake.state.violations == [
            "PUT /github/repos/o/r/pulls/1/merge: Head branch was modified. "
            "Review and try the merge again.",
            "GET /github/repos/o/r/pulls/99: Not Found",
        ]
    finally:
        await github.close()
        await gitlab.close()
        fake.state.reset()
    client = GitHubClient(fake.github_url, TOKEN)
    try:
        with pytest.raises(CodeHostError, match="not a documented parameter") as refused:
            await client.rest.call(
                "POST", "repos/o/r/pulls", "x", {"title": "t", "head": "h", "base": "b", "x": 1}
            )
        assert refused.value.status == 422
    finally:
        await client.close()
        fake.state.reset()
