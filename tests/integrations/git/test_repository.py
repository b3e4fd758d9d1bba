"""Commits to a real Git server (`git http-backend` on loopback) with dulwich: one field, one
commit, fast-forward only, rebased when the branch moves, refused when our field moved."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest

from core.errors import Conflict, ForgebotError
from core.yaml_field import FieldSpec
from integrations.git.repository import DesiredStateRepo, FieldChange, Identity
from tests.fixtures.git_server import HELM_LAYOUT, KUSTOMIZE_LAYOUT, TOKEN, GitServer, git

FILE = "apps/checkout/overlays/staging/kustomization.yaml"
SPEC = FieldSpec("kustomize-image", "registry.example.com/payments/checkout")
BOT = Identity("forgebot", "forgebot@example.com")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _change(value: str, expect: str | None, operation: str, file: str = FILE) -> FieldChange:
    return FieldChange(
        file,
        SPEC,
        value,
        expect,
        f"Deploy checkout {value} to staging\n\nRequested in Slack: https://slack.com/archives/C0X/p1\n\n"
        "Co-authored-by: U0DEVELOPER <U0DEVELOPER@users.slack.invalid>",
        operation,
    )


def _repo(server: GitServer, token: str | None = TOKEN) -> DesiredStateRepo:
    return DesiredStateRepo(server.repo_url("payments"), "main", token, BOT)


def test_a_deploy_is_one_commit_that_changes_only_the_field(git_server: GitServer) -> None:
    git_server.create("payments", KUSTOMIZE_LAYOUT)
    before = git_server.head("payments")
    pushed = _repo(git_server).change(_change("1.4.2", "1.4.1", "op-1"), NOW)

    assert pushed.created and pushed.previous == "1.4.1" and pushed.attempts == 1
    bare = git_server.bare("payments")
    assert git("rev-parse", "main^", cwd=bare).strip() == before, "a fast-forward of the tip"
    assert git("diff", "--name-only", before, pushed.commit, cwd=bare).split() == [FILE]
    diff = git("diff", "-U0", before, pushed.commit, cwd=bare)
    assert [
        line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"
    ] == [
        "-    newTag: 1.4.1   # forgebot sets this",
        "+    newTag: 1.4.2   # forgebot sets this",
    ]
    message = git("log", "-1", "--format=%an <%ae>%n%B", cwd=bare)
    assert message.startswith("forgebot <forgebot@example.com>\nDeploy checkout 1.4.2")
    assert "Co-authored-by: U0DEVELOPER" in message and "Forgebot-Operation: op-1" in message
    assert "https://slack.com/archives/C0X/p1" in message
    git("fsck", "--strict", cwd=bare)  # the objects dulwich wrote are well-formed


def test_the_same_operation_again_makes_no_second_commit(git_server: GitServer) -> None:
    git_server.create("payments", KUSTOMIZE_LAYOUT)
    first = _repo(git_server).change(_change("1.4.2", "1.4.1", "op-1"), NOW)
    again = _repo(git_server).change(_change("1.4.2", "1.4.1", "op-1"), NOW)
    assert not again.created and again.commit == first.commit
    assert git_server.head("payments") == first.commit


def test_a_moved_branch_is_rebased_onto_and_a_moved_field_is_a_conflict(
    git_server: GitServer,
) -> None:
    git_server.create("payments", KUSTOMIZE_LAYOUT)
    raced = threading.Event()

    def someone_else_pushes(name: str) -> None:
        if not raced.is_set():
            raced.set()
            git_server.commit_directly("payments", "README.md", "Updated by hand.\n", "docs")

    git_server.before_push = someone_else_pushes
    pushed = _repo(git_server).change(_change("1.4.2", "1.4.1", "op-1"), NOW)
    assert pushed.attempts == 2, "rebased once on the commit that landed first"
    bare = git_server.bare("payments")
    assert git("log", "--format=%s", "-2", cwd=bare).split("\n")[:2] == [
        "Deploy checkout 1.4.2 to staging",
        "docs",
    ]

    git_server.before_push = None
    text = KUSTOMIZE_LAYOUT[FILE].replace("newTag: 1.4.1", "newTag: 9.9.9")
    git_server.commit_directly("payments", FILE, text, "hand edit")
    head = git_server.head("payments")
    with pytest.raises(Conflict, match=r"holds `9.9.9`.*hand edit.*Nothing was pushed"):
        _repo(git_server).change(_change("1.5.0", "1.4.2", "op-2"), NOW)
    assert git_server.head("payments") == head, "never forced"


def test_concurrent_changes_to_one_repository_all_land(git_server: GitServer) -> None:
    from tests.fixtures.git_server import service_layouts

    git_server.create("payments", service_layouts(6))
    results: list[object] = []

    def deploy(index: int) -> None:
        spec = FieldSpec("kustomize-image", f"registry.example.com/bench/svc-{index:02d}")
        change = FieldChange(
            f"apps/svc-{index:02d}/kustomization.yaml",
            spec,
            "2.0.0",
            "1.0.0",
            "deploy",
            f"o{index}",
        )
        results.append(_repo(git_server).change(change, NOW))

    threads = [threading.Thread(target=deploy, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    bare = git_server.bare("payments")
    assert len(git("log", "--format=%H", cwd=bare).split()) == 7, "six commits on the first"
    for index in range(6):
        assert "newTag: 2.0.0" in git_server.show(
            "payments", "main", f"apps/svc-{index:02d}/kustomization.yaml"
        )


def test_a_bad_token_is_a_clear_error_and_never_logged(
    git_server: GitServer, caplog: pytest.LogCaptureFixture
) -> None:
    git_server.create("payments", HELM_LAYOUT)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ForgebotError, match="refused forgebot's credentials") as error:
        _repo(git_server, token="wrong-token-123456").read(FILE, SPEC)
    assert "wrong-token" not in str(error.value)
    assert "wrong-token" not in caplog.text
    _repo(git_server).read("envs/staging/ledger-values.yaml", FieldSpec("helm-value", "image.tag"))
    assert TOKEN not in caplog.text
    assert all(TOKEN not in path for _, path, _ in git_server.requests), "not in any URL"


def test_a_kept_copy_is_refreshed_before_anything_but_a_push(git_server: GitServer) -> None:
    git_server.create("payments", KUSTOMIZE_LAYOUT)
    repo = _repo(git_server)
    first = repo.change(_change("1.4.2", "1.4.1", "op-1"), NOW)
    # Behind the kept copy's back: a person reverts the field by hand, another edits a file.
    git_server.commit_directly("payments", FILE, KUSTOMIZE_LAYOUT[FILE], "manual revert")
    git_server.commit_directly("payments", "README.md", "x\n", "docs")
    again = repo.change(_change("1.4.2", "1.4.1", "op-3"), NOW)
    assert again.created and again.commit != first.commit, "not fooled by the stale copy"
    assert git_server.head("payments") == again.commit
    third = repo.change(_change("1.4.3", "1.4.2", "op-4"), NOW)
    assert third.created and third.attempts == 1, "the kept copy was current: no fetch needed"
    assert git("rev-parse", "main^", cwd=git_server.bare("payments")).strip() == again.commit
