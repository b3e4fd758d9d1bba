"""Pull-request previews end to end: signed webhooks into the running bot, the official
Kubernetes client against the fake API server, the fake Slack Web API, and the fake GitHub and
GitLab APIs checking every request's documented shape."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from integrations.sandbox.codehost_api import github_pull_request, gitlab_merge_request
from integrations.sandbox.slack_payloads import block_actions, slash_command
from storage import deployments as deploy_repo
from storage import environments as env_repo
from storage.models import DeploymentRecord, DeployOutcome, EnvState
from tests.commands.previews.conftest import PreviewHarness
from tests.fixtures.slack import DEVELOPER, STRANGER

REPO = "acme/checkout"
NS = "pr-checkout-42"
HOST = "pr-42.checkout.preview.example.com"
IMAGE = "registry.example.com/payments/checkout"


def sha(n: int) -> str:
    return f"{n:040x}"


def at(minute: int, second: int = 0) -> str:
    return f"2026-11-24T10:{minute:02d}:{second:02d}Z"


def channel_posts(h: PreviewHarness, channel: str) -> list[dict[str, object]]:
    return [c.args for c in h.slack.state.find("chat.postMessage") if c.args["channel"] == channel]


def current_message(h: PreviewHarness, channel: str) -> str:
    messages = h.slack.messages_in(channel)
    assert len(messages) == 1, messages
    message = next(iter(messages.values()))
    return str(message.get("text", "")) + str(message.get("blocks", ""))


async def test_a_pull_request_gets_a_preview_that_follows_it_and_goes_when_merged(
    harness: PreviewHarness,
) -> None:
    h = harness
    status, body = await h.github(github_pull_request(REPO, 42, "opened", sha(1), at(0)))
    assert status == 202 and body["outcome"] == "accepted", body
    await h.settle()

    # The environment capability's namespace, with everything that guards it.
    namespace = h.kube.find("namespaces", "", NS)
    assert namespace is not None
    labels = namespace["metadata"]["labels"]
    assert labels["forgebot.io/team"] == "payments" and labels["forgebot.io/template"] == (
        "web-preview"
    )
    for plural, name in (
        ("resourcequotas", "forgebot-quota"),
        ("limitranges", "forgebot-defaults"),
        ("rolebindings", "forgebot-team-edit"),
        ("networkpolicies", "forgebot-isolate"),
        ("networkpolicies", "forgebot-allow-ingress"),
        ("services", "checkout"),
    ):
        assert h.kube.find(plural, NS, name) is not None, (plural, name)
    deployment = h.kube.find("deployments", NS, "checkout")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:{sha(1)}"
    ingress = h.kube.find("ingresses", NS, "checkout")
    assert ingress is not None
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == HOST

    preview = await h.preview("github", REPO, 42)
    assert preview.phase == "ready" and preview.deployed_sha == sha(1)
    text = current_message(h, "C0PAYMENTS")
    assert HOST in text and "/month" in text and "Extend" in text and "Keep awake" in text
    comments = h.codehost.comments_on("github", REPO, 42)
    assert len(comments) == 1 and f"https://{HOST}" in comments[0]["body"]
    assert "/month" in comments[0]["body"]
    [deployment_1] = h.codehost.deployments_of(REPO)
    assert deployment_1["ref"] == sha(1) and deployment_1["transient"] is True
    assert deployment_1["statuses"] == ["in_progress", "success"]
    assert deployment_1["urls"][-1] == f"https://{HOST}"
    assert h.runtime.db is not None
    env = await h.runtime.db.run(lambda s: env_repo.live_by_name(s, NS))
    assert env is not None and env.state == EnvState.ACTIVE and env.owner_user_id == ""
    first_expiry = env.expires_at
    assert first_expiry is not None

    # A push an hour later: same namespace, new image, TTL extended, same message and comment.
    h.advance(timedelta(hours=1))
    status, _ = await h.github(github_pull_request(REPO, 42, "synchronize", sha(2), at(59)))
    assert status == 202
    await h.settle()
    deployment = h.kube.find("deployments", NS, "checkout")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:{sha(2)}"
    env = await h.runtime.db.run(lambda s: env_repo.live_by_name(s, NS))
    assert env is not None and env.expires_at is not None and env.expires_at > first_expiry
    assert len(channel_posts(h, "C0PAYMENTS")) == 1
    assert f"Updated to `{sha(2)[:7]}`" in current_message(h, "C0PAYMENTS")
    comments = h.codehost.comments_on("github", REPO, 42)
    assert len(comments) == 1 and sha(2)[:7] in comments[0]["body"]
    assert [d["ref"] for d in h.codehost.deployments_of(REPO)] == [sha(1), sha(2)]

    # Merged: everything goes, the message and comment say so, the deployment is inactive,
    # and the first commit's time is kept for DORA's lead time.
    h.codehost.commits[("github", REPO, 42)] = ["2026-11-20T08:00:00Z", "2026-11-23T09:00:00Z"]
    merged = github_pull_request(
        REPO, 42, "closed", sha(2), "2026-11-24T11:30:00Z", merged=True, merge_commit_sha=sha(99)
    )
    status, _ = await h.github(merged)
    await h.settle()
    assert h.kube.find("namespaces", "", NS) is None
    assert ":white_circle: Removed (merged)" in current_message(h, "C0PAYMENTS")
    assert "Extend" not in current_message(h, "C0PAYMENTS")
    assert "removed" in h.codehost.comments_on("github", REPO, 42)[0]["body"]
    assert h.codehost.deployments_of(REPO)[-1]["statuses"][-1] == "inactive"
    preview = await h.preview("github", REPO, 42)
    assert preview.first_commit_at == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

    # Preview rollouts are recorded but are not deploys in DORA's sense.
    since, until = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    figures = await h.runtime.db.run(lambda s: deploy_repo.dora(s, ["checkout"], since, until))
    assert figures.deploys == 0
    # The merge deploys to production: lead time runs from the PR's first commit.
    record = DeploymentRecord(
        service="checkout",
        team="payments",
        environment="prod",
        version="1.5.0",
        started_at=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
        commit_sha=sha(99)[:7],
        commit_time=datetime(2026, 11, 24, 11, 30, tzinfo=UTC),
    )

    def deployed(session: object) -> None:
        stored = deploy_repo.start(session, record)  # type: ignore[arg-type]
        deploy_repo.finish(
            session,  # type: ignore[arg-type]
            stored.id or 0,
            outcome=DeployOutcome.SUCCEEDED,
            now=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
        )

    await h.runtime.db.run(deployed)
    figures = await h.runtime.db.run(lambda s: deploy_repo.dora(s, ["checkout"], since, until))
    assert figures.deploys == 1
    assert figures.lead_time_median == timedelta(days=4, hours=4)


async def test_ten_pushes_in_a_minute_leave_one_preview_at_the_last_push(
    harness: PreviewHarness,
) -> None:
    h = harness
    await h.github(github_pull_request(REPO, 7, "opened", sha(100), at(0)))
    # Ten pushes within a minute, delivered concurrently and out of order.
    pushes = [
        github_pull_request(REPO, 7, "synchronize", sha(101 + i), at(1, 5 * i)) for i in range(10)
    ]
    random.Random(7).shuffle(pushes)
    results = await asyncio.gather(*(h.github(p) for p in pushes))
    assert all(status == 202 for status, _ in results)
    await h.settle()

    last = sha(110)
    deployment = h.kube.find("deployments", "pr-checkout-7", "checkout")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:{last}"
    preview = await h.preview("github", REPO, 7)
    assert preview.phase == "ready" and preview.deployed_sha == last and preview.head_sha == last
    assert len(channel_posts(h, "C0PAYMENTS")) == 1
    assert len(h.codehost.comments_on("github", REPO, 7)) == 1
    assert last[:7] in h.codehost.comments_on("github", REPO, 7)[0]["body"]
    assert h.codehost.count("POST", "/issues/7/comments") == 1

    # A late delivery of an older push changes nothing.
    status, body = await h.github(github_pull_request(REPO, 7, "synchronize", sha(103), at(1, 10)))
    assert status == 202 and body["outcome"] == "unchanged"
    await h.settle()
    assert (await h.preview("github", REPO, 7)).deployed_sha == last


async def test_a_close_during_provisioning_leaves_nothing_behind(harness: PreviewHarness) -> None:
    h = harness
    h.kube.faults.latency = 0.05  # every Kubernetes call is slow: the close lands mid-way
    await h.github(github_pull_request(REPO, 9, "opened", sha(200), at(0)))
    await asyncio.sleep(0.3)
    status, _ = await h.github(github_pull_request(REPO, 9, "closed", sha(200), at(0, 30)))
    assert status == 202
    await h.settle()
    h.kube.faults.latency = 0.0
    assert h.kube.find("namespaces", "", "pr-checkout-9") is None
    assert (
        h.kube.list(
            next(
                k
                for k in __import__("integrations.sandbox.kube_api", fromlist=["KINDS"]).KINDS
                if k.plural == "ingresses"
            ),
            "pr-checkout-9",
        )
        == []
    )
    assert h.runtime.db is not None
    assert await h.runtime.db.run(lambda s: env_repo.live_by_name(s, "pr-checkout-9")) is None
    preview = await h.preview("github", REPO, 9)
    assert preview.phase == "removed"
    assert len(channel_posts(h, "C0PAYMENTS")) == 1
    assert "Removed" in current_message(h, "C0PAYMENTS")


async def test_forged_replayed_malformed_and_unknown_deliveries(harness: PreviewHarness) -> None:
    h = harness
    payload = github_pull_request(REPO, 5, "opened", sha(300), at(0))
    status, _ = await h.github(payload, secret="not-the-secret")
    assert status == 401
    status, _ = await h.gitlab(
        gitlab_merge_request("acme/search/api", 5, "open", sha(300), at(0)), token="wrong"
    )
    assert status == 401
    for broken in (
        b"{not json",
        b"[]",
        b'{"action": "opened"}',
        b'{"action": "opened", '
        b'"pull_request": {"number": 5, "head": {"sha": "zz"}}, "repository": {}}',
    ):
        status, body = await h.github({}, body=broken)
        assert status == 400 and body["error"], (broken, body)
    status, body = await h.github(github_pull_request("acme/unknown", 1, "opened", sha(1), at(0)))
    assert status == 202 and body["outcome"] == "ignored"
    status, body = await h.github(payload, event="issues")
    assert status == 202 and body["outcome"] == "ignored"
    status, body = await h.github(payload, delivery="delivery-1")
    assert status == 202 and body["outcome"] == "accepted"
    await h.settle()
    closed = github_pull_request(REPO, 5, "closed", sha(300), at(5))
    status, body = await h.github(closed, delivery="delivery-1")  # a replayed delivery id
    assert status == 200 and body["outcome"] == "duplicate"
    await h.settle()
    assert (await h.preview("github", REPO, 5)).open is True
    assert h.kube.find("namespaces", "", "pr-checkout-5") is not None


async def test_gitlab_merge_requests_get_previews_and_one_note(harness: PreviewHarness) -> None:
    h = harness
    project = "acme/search/api"
    status, body = await h.gitlab(
        gitlab_merge_request(project, 3, "open", sha(400), at(0), branch="Feature/Fast_Search")
    )
    assert status == 202, body
    await h.settle()
    ingress = h.kube.find("ingresses", "pr-search-api-3", "search-api")
    assert ingress is not None
    assert ingress["spec"]["rules"][0]["host"] == "feature-fast-search.search.preview.example.com"
    # An edit that is not a push is ignored; a push (oldrev) updates.
    status, body = await h.gitlab(gitlab_merge_request(project, 3, "update", sha(400), at(1)))
    assert status == 202 and body["outcome"] == "ignored"
    await h.gitlab(
        gitlab_merge_request(
            project, 3, "update", sha(401), at(2), oldrev=sha(400), branch="Feature/Fast_Search"
        )
    )
    await h.settle()
    notes = h.codehost.comments_on("gitlab", project, 3)
    assert len(notes) == 1 and sha(401)[:7] in notes[0]["body"] and notes[0]["edits"] >= 1
    assert len(channel_posts(h, "C0SEARCH")) == 1
    # GitLab's environment points at the preview; each pushed SHA is a deployment of it.
    environment = h.codehost.environment_named(project, "pr-search-api-3")
    assert environment is not None and environment["state"] == "available"
    assert environment["external_url"] == "https://feature-fast-search.search.preview.example.com"
    deployments = h.codehost.deployments_of(project)
    assert [(d["sha"], d["ref"], d["statuses"]) for d in deployments] == [
        (sha(400), "Feature/Fast_Search", ["running", "success"]),
        (sha(401), "Feature/Fast_Search", ["running", "success"]),
    ]
    await h.gitlab(gitlab_merge_request(project, 3, "close", sha(401), at(3)))
    await h.settle()
    assert h.kube.find("namespaces", "", "pr-search-api-3") is None
    stopped = h.codehost.environment_named(project, "pr-search-api-3")
    assert stopped is not None and stopped["state"] == "stopped" and stopped["stops"] == 1
    assert h.codehost.violations == [], "every GitLab call had the documented shape"


async def test_buttons_check_rights_at_click_and_the_list_shows_previews(
    harness: PreviewHarness,
) -> None:
    h = harness
    await h.github(github_pull_request(REPO, 11, "opened", sha(500), at(0)))
    await h.settle()

    async def reply_containing(text: str) -> str:
        found = await h.slack.state.until(
            lambda calls: [c for c in calls if c.method == "response_url" and text in str(c.args)],
            timeout=10,
        )
        return str(found[-1].args)

    async def press(who: object, action_id: str) -> None:
        body = block_actions(
            who,  # type: ignore[arg-type]
            {"action_id": action_id, "block_id": "preview-1", "value": "pr-checkout-11"},
            response_url=h.slack.new_response_url(),
            message={"ts": "1.0"},
        )
        response = await h.client.send(body)
        assert response.status == 200

    await press(STRANGER, "preview_delete")
    assert "env.delete" in await reply_containing("can’t")
    await h.settle()
    assert h.kube.find("namespaces", "", "pr-checkout-11") is not None

    assert h.runtime.db is not None
    before = await h.runtime.db.run(lambda s: env_repo.live_by_name(s, "pr-checkout-11"))
    await press(DEVELOPER, "preview_extend")
    assert "now expires" in await reply_containing("pr-checkout-11 now expires")
    await h.settle()
    after = await h.runtime.db.run(lambda s: env_repo.live_by_name(s, "pr-checkout-11"))
    assert before is not None and after is not None
    assert after.expires_at is not None and before.expires_at is not None
    assert after.expires_at - before.expires_at == timedelta(days=1)

    response = await h.client.send(
        slash_command(DEVELOPER, "/forge", "previews", h.slack.new_response_url())
    )
    assert response.status == 200
    listing = await reply_containing("Previews (your teams)")
    assert "pr-checkout-11" in listing and "ready" in listing and "/month" in listing
    response = await h.client.send(
        slash_command(DEVELOPER, "/forge", "previews nosuchteam", h.slack.new_response_url())
    )
    assert "no team called nosuchteam" in str(response.json())

    await press(DEVELOPER, "preview_delete")
    await reply_containing("Deleting pr-checkout-11")
    await h.settle()
    assert h.kube.find("namespaces", "", "pr-checkout-11") is None
    assert "Removed" in current_message(h, "C0PAYMENTS")
    # The PR is still open: the next push builds it again, in the same message.
    await h.github(github_pull_request(REPO, 11, "synchronize", sha(501), at(5)))
    await h.settle()
    assert h.kube.find("namespaces", "", "pr-checkout-11") is not None
    assert len(channel_posts(h, "C0PAYMENTS")) == 1
