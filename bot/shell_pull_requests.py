"""`:pr` in the demo: the shell plays GitHub and delivers pull-request webhooks to the bot.

`:pr open 7`, `:pr push 7`, `:pr close 7` and `:pr merge 7` send the `pull_request` delivery
GitHub would (opened, synchronize with a new head SHA, closed, closed and merged), signed with
the webhook secret (`X-Hub-Signature-256`) and with a fresh `X-GitHub-Delivery`, to the bot's
own `POST /api/webhooks/github`: the same path as in production, so the preview is built in
the sandbox cluster and its one message in the team's channel is updated in place.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field

import aiohttp

from core.clock import Clock
from integrations.codehost.webhooks import github_signature
from integrations.sandbox.codehost_api import github_pull_request

USAGE = "usage: :pr open|push|close|merge [NUMBER] (a pull request of {repository})"
ACTIONS = {"open": "opened", "push": "synchronize", "close": "closed", "merge": "closed"}


@dataclass
class DemoPullRequests:
    webhook_url: str
    secret: str
    repository: str
    clock: Clock
    _pushes: dict[int, int] = field(default_factory=dict)

    def head(self, number: int) -> str:
        return _fake_sha(f"{self.repository}#{number}/{self._pushes.get(number, 0)}")

    async def deliver(self, text: str) -> str:
        """Send the delivery `text` asks for; returns the line the shell shows."""
        words = text.split()
        usage = USAGE.format(repository=self.repository)
        if not words or words[0] not in ACTIONS or len(words) > 2:
            return f"({usage})"
        if len(words) == 2 and not (words[1].isdigit() and 0 < int(words[1]) < 100_000):
            return f"({usage})"
        verb, number = words[0], int(words[1]) if len(words) == 2 else 1
        if verb == "push":
            self._pushes[number] = self._pushes.get(number, 0) + 1
        sha = self.head(number)
        payload = github_pull_request(
            self.repository,
            number,
            ACTIONS[verb],
            sha,
            self.clock.now().isoformat().replace("+00:00", "Z"),
            title=f"Demo change #{number}",
            branch=f"demo-{number}",
            author="octocat",
            merged=verb == "merge",
            merge_commit_sha=_fake_sha(f"merge {sha}") if verb == "merge" else "",
        )
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": github_signature(self.secret, body),
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.webhook_url, data=body, headers=headers) as response,
        ):
            answer = await response.json(content_type=None)
        outcome = answer.get("outcome") or answer.get("error") or ""
        return (
            f"(GitHub delivered pull_request {ACTIONS[verb]} for {self.repository}#{number}, "
            f"head {sha[:7]}: HTTP {response.status} {outcome})"
        )


def _fake_sha(text: str) -> str:
    """A commit SHA's shape (40 hex digits), made up: the demo has no repository."""
    return hashlib.sha256(text.encode()).hexdigest()[:40]
