"""One desired-state repository over smart HTTP, with dulwich (pure Python, no `git` binary,
nothing typed by a person ever reaches a shell).

A change is one commit that edits one field of one file (`core.yaml_field`) on top
of the branch's tip, pushed as a fast-forward. The push names the tip it was built on; if the
branch moved meanwhile, the server refuses it (or we see it moved first), and the change is
built again on the new tip: that is the rebase. If the new tip changed *our* field, the change
is refused with the commit that did it: a conflict is reported, never forced. Nothing here can
force-push: every commit has the fetched tip as its parent and the server checks the old value.

Every commit carries a `Forgebot-Operation:` trailer; before building a commit the recent
history is searched for it, so a retried operation (a restart mid-push, a lost answer) finds
its commit instead of making a second one.

A `DesiredStateRepo` keeps its repository in memory between calls and fetches only what is new
(dulwich negotiates with the objects it has). A push may be built on that copy without fetching
first: the push itself checks that the branch has not moved, and anything other than a push
(finding the operation's commit, the value already there, a conflict) is decided on a fresh
fetch. The calls are blocking (dulwich over urllib3); `commands.deploy.gitops` runs them in
threads under a bound on open connections, one push at a time per repository.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dulwich.client import HTTPUnauthorized, default_urllib3_manager, get_transport_and_path
from dulwich.errors import GitProtocolError, HangupException
from dulwich.object_store import commit_tree_changes
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import MemoryRepo

from core.errors import Conflict, DependencyUnavailable, ForgebotError, NotFound
from core.yaml_field import FieldError, FieldSpec, read_field, set_field

log = logging.getLogger(__name__)

TRAILER = "Forgebot-Operation"
HISTORY_DEPTH = 200
"""How far back a retried operation looks for its own commit."""


@dataclass(frozen=True)
class Identity:
    name: str
    email: str

    def line(self) -> bytes:
        return f"{self.name} <{self.email}>".encode()


@dataclass(frozen=True)
class FieldChange:
    """Set `spec` in `file` to `value`, if it still holds `expect` (None: whatever it holds)."""

    file: str
    spec: FieldSpec
    value: str
    expect: str | None
    message: str
    """The full commit message (subject, body and trailers but the operation's)."""
    operation: str
    """The idempotency key, written as the `Forgebot-Operation` trailer."""


@dataclass(frozen=True)
class Pushed:
    commit: str
    previous: str
    """What the field held before."""
    created: bool
    """False: the operation's commit already existed, or the field already held the value."""
    attempts: int
    """1, plus one per rebase after the branch moved under us."""
    branch: str = ""
    """Set when the commit was proposed on its own branch (a pull request's head)."""


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    subject: str
    author: str
    time: datetime
    operation: str
    message: str


class NotFastForward(Exception):
    """The branch moved between fetch and push: build the change again on the new tip."""


def _operation_of(message: str) -> str:
    match = re.search(rf"^{TRAILER}: (\S+)\s*$", message, re.MULTILINE)
    return match.group(1) if match else ""


@dataclass
class DesiredStateRepo:
    url: str
    branch: str
    token: str | None
    author: Identity
    timeout: float = 20.0
    max_attempts: int = 8
    _local: MemoryRepo | None = field(default=None, repr=False)
    _tip: ObjectID | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pool: Any = field(default=None, repr=False)
    """One urllib3 pool per repository: connections are reused, and every read has a timeout."""

    @property
    def ref(self) -> Ref:
        return Ref(f"refs/heads/{self.branch}".encode())

    def _client(self) -> tuple[object, str]:
        if self._pool is None:
            self._pool = default_urllib3_manager(None, timeout=self.timeout)
        try:
            return get_transport_and_path(
                self.url,
                username="x-access-token" if self.token else None,
                password=self.token,
                pool_manager=self._pool,
            )
        except ValueError as exc:
            raise ForgebotError(f"cannot use the repository {self.url}: {exc}") from None

    def _fetch(self) -> tuple[MemoryRepo, ObjectID]:
        client, path = self._client()
        repo = self._local if self._local is not None else MemoryRepo()
        wanted = self.ref

        def wants(refs: dict[Ref, ObjectID | None], depth: int | None = None) -> list[ObjectID]:
            tip = refs.get(wanted)
            if tip is None:
                raise NotFound(f"the repository {self.url} has no branch {self.branch}")
            return [tip]

        try:
            result = client.fetch(path, repo, determine_wants=wants)  # type: ignore[attr-defined]
        except HTTPUnauthorized:
            raise ForgebotError(
                f"the repository {self.url} refused forgebot's credentials (check the token's "
                "access and expiry)"
            ) from None
        except (GitProtocolError, HangupException, OSError) as exc:
            raise DependencyUnavailable(
                f"the repository {self.url} is unreachable: {exc}"
            ) from None
        tip = result.refs.get(wanted)
        if tip is None:
            raise NotFound(f"the repository {self.url} has no branch {self.branch}")
        repo.refs[wanted] = tip
        self._local, self._tip = repo, tip
        return repo, tip

    def _state(self, fresh: bool) -> tuple[MemoryRepo, ObjectID]:
        if not fresh and self._local is not None and self._tip is not None:
            return self._local, self._tip
        return self._fetch()

    @staticmethod
    def _file(repo: MemoryRepo, commit: ObjectID, path: str) -> tuple[ObjectID, str]:
        tree = repo[repo[commit].tree]  # type: ignore[attr-defined]
        assert isinstance(tree, Tree)
        try:
            _, sha = tree.lookup_path(repo.object_store.__getitem__, path.encode())
        except KeyError:
            raise NotFound(f"the repository has no file {path}") from None
        blob = repo[sha]
        if not isinstance(blob, Blob):
            raise NotFound(f"{path} is not a file")
        try:
            return sha, blob.data.decode("utf-8")
        except UnicodeDecodeError:
            raise FieldError(f"{path} is not UTF-8 text") from None

    def read(self, file: str, spec: FieldSpec) -> tuple[str, str]:
        """(the field's value at the branch's tip, the tip)."""
        with self._lock:
            repo, tip = self._fetch()
            return read_field(self._file(repo, tip, file)[1], spec), tip.decode()

    def _history(self, repo: MemoryRepo, tip: ObjectID, limit: int) -> list[CommitInfo]:
        found = []
        for entry in repo.get_walker(include=[tip], max_entries=limit):
            commit = entry.commit
            message = commit.message.decode("utf-8", "replace")
            found.append(
                CommitInfo(
                    commit.id.decode(),
                    message.split("\n", 1)[0],
                    commit.author.decode("utf-8", "replace"),
                    datetime.fromtimestamp(commit.commit_time).astimezone(),
                    _operation_of(message),
                    message,
                )
            )
        return found

    def log(self, file: str, limit: int = 20) -> list[CommitInfo]:
        """The newest commits that changed `file`, newest first."""
        with self._lock:
            repo, tip = self._fetch()
            found = []
            for entry in repo.get_walker(include=[tip], paths=[file.encode()], max_entries=limit):
                found.extend(self._history(repo, entry.commit.id, 1))
            return found

    def change(self, change: FieldChange, now: datetime) -> Pushed:
        """Commit and push the change; see the module's docstring for the guarantees."""
        with self._lock:
            return self._change(change, now)

    def _change(self, change: FieldChange, now: datetime) -> Pushed:
        attempt, fresh = 1, self._local is None
        while attempt <= self.max_attempts:
            repo, tip = self._state(fresh)
            decided = self._decide(repo, tip, change)
            if decided is not None and not fresh:
                fresh = True  # decide anything but a push on what the server has now
                continue
            if isinstance(decided, Pushed):
                return Pushed(decided.commit, decided.previous, False, attempt)
            if decided is not None:
                raise decided
            _, text = self._file(repo, tip, change.file)
            current = read_field(text, change.spec)
            commit = self._commit(
                repo, tip, change, set_field(text, change.spec, change.value), now
            )
            try:
                self._push(repo, tip, commit)
            except NotFastForward:
                log.info(
                    "branch %s of %s moved; rebasing (attempt %d)", self.branch, self.url, attempt
                )
                if fresh:
                    time.sleep(min(0.05 * attempt, 0.5) * (0.5 + random.random()))
                attempt += 1
                fresh = True
                continue
            self._tip = commit
            repo.refs[self.ref] = commit
            return Pushed(commit.decode(), current, True, attempt)
        raise Conflict(
            f"the branch {self.branch} of {self.url} kept moving ({self.max_attempts} attempts); "
            "nothing was forced. Try again."
        )

    def propose(self, change: FieldChange, head: str, now: datetime) -> Pushed:
        """The change as a commit on a new branch `head` (a pull request's), built on the
        branch's tip. A `Pushed` without `branch` means the change is on the branch already
        (merged before a restart, or the value already there); never overwrites a branch that
        is not this operation's."""
        with self._lock:
            repo, tip = self._fetch()
            decided = self._decide(repo, tip, change)
            if isinstance(decided, Pushed):
                return decided
            if decided is not None:
                raise decided
            client, path = self._client()
            head_ref = Ref(f"refs/heads/{head}".encode())
            try:
                remote = client.get_refs(path).refs  # type: ignore[attr-defined]
            except (GitProtocolError, HangupException, OSError) as exc:
                raise DependencyUnavailable(
                    f"the repository {self.url} is unreachable: {exc}"
                ) from None
            existing = remote.get(head_ref)
            if existing is not None:
                client.fetch(path, repo, determine_wants=lambda refs, depth=None: [existing])  # type: ignore[attr-defined]
                found = repo[existing]
                message = found.message.decode("utf-8", "replace")  # type: ignore[attr-defined]
                if _operation_of(message) == change.operation:
                    return Pushed(existing.decode(), change.expect or "", False, 1, head)
                raise Conflict(f"the branch {head} already exists in {self.url} with other work")
            _, text = self._file(repo, tip, change.file)
            current = read_field(text, change.spec)
            commit = self._commit(
                repo, tip, change, set_field(text, change.spec, change.value), now
            )

            def create(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
                if refs.get(head_ref) is not None:
                    raise Conflict(f"the branch {head} appeared in {self.url} meanwhile")
                return {**refs, head_ref: commit}

            result = client.send_pack(path, create, generate_pack_data=repo.generate_pack_data)  # type: ignore[attr-defined]
            status = (result.ref_status or {}).get(head_ref)
            if status is not None:
                raise ForgebotError(
                    f"the repository {self.url} refused the branch {head}: {status}"
                )
            return Pushed(commit.decode(), current, True, 1, head)

    def _decide(
        self, repo: MemoryRepo, tip: ObjectID, change: FieldChange
    ) -> Pushed | Conflict | None:
        """What to do instead of pushing, if anything: the operation's commit or the value is
        already there (a Pushed), or the field moved (a Conflict)."""
        mine = next(
            (c for c in self._history(repo, tip, HISTORY_DEPTH) if c.operation == change.operation),
            None,
        )
        if mine is not None:
            return Pushed(mine.sha, change.expect or "", False, 0)
        _, text = self._file(repo, tip, change.file)
        current = read_field(text, change.spec)
        if current == change.value:
            return Pushed(tip.decode(), current, False, 0)
        if change.expect is not None and current != change.expect:
            culprit = self._who_changed(repo, tip, change)
            return Conflict(
                f"{change.file} no longer holds `{change.expect}`: it holds `{current}`"
                f"{culprit}. Nothing was pushed; look at the repository and try again."
            )
        return None

    def _who_changed(self, repo: MemoryRepo, tip: ObjectID, change: FieldChange) -> str:
        for entry in repo.get_walker(
            include=[tip], paths=[change.file.encode()], max_entries=HISTORY_DEPTH
        ):
            commit = entry.commit
            subject = commit.message.decode("utf-8", "replace").split("\n", 1)[0]
            author = commit.author.decode("utf-8", "replace").split(" <", 1)[0]
            return f" since commit {commit.id.decode()[:10]} “{subject}” by {author}"
        return ""

    def _commit(
        self, repo: MemoryRepo, tip: ObjectID, change: FieldChange, text: str, now: datetime
    ) -> ObjectID:
        parent = repo[tip]
        assert isinstance(parent, Commit)
        blob = Blob.from_string(text.encode("utf-8"))
        repo.object_store.add_object(blob)
        mode = self._mode(repo, parent.tree, change.file)
        tree = commit_tree_changes(
            repo.object_store, parent.tree, [(change.file.encode(), mode, blob.id)]
        )
        commit = Commit()
        commit.tree = tree
        commit.parents = [tip]
        commit.author = commit.committer = self.author.line()
        stamp = int(now.timestamp())
        delta = now.utcoffset()
        offset = int(delta.total_seconds()) if delta is not None else 0
        commit.author_time = commit.commit_time = stamp
        commit.author_timezone = commit.commit_timezone = offset
        message = change.message.rstrip("\n")
        separator = "\n" if re.search(r"\n[A-Za-z-]+: .+$", message) else "\n\n"
        commit.message = f"{message}{separator}{TRAILER}: {change.operation}\n".encode()
        repo.object_store.add_object(commit)
        return commit.id

    @staticmethod
    def _mode(repo: MemoryRepo, tree_id: ObjectID, path: str) -> int:
        tree = repo[tree_id]
        assert isinstance(tree, Tree)
        mode, _ = tree.lookup_path(repo.object_store.__getitem__, path.encode())
        return int(mode)

    def _push(self, repo: MemoryRepo, base: ObjectID, commit: ObjectID) -> None:
        client, path = self._client()
        wanted = self.ref

        def update_refs(refs: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
            if refs.get(wanted) != base:
                raise NotFastForward()
            return {**refs, wanted: commit}

        try:
            result = client.send_pack(  # type: ignore[attr-defined]
                path, update_refs, generate_pack_data=repo.generate_pack_data
            )
        except NotFastForward:
            raise
        except HTTPUnauthorized:
            raise ForgebotError(
                f"the repository {self.url} refused forgebot's push (the token needs write access)"
            ) from None
        except (GitProtocolError, HangupException, OSError) as exc:
            raise DependencyUnavailable(
                f"the repository {self.url} is unreachable: {exc}"
            ) from None
        status = (result.ref_status or {}).get(wanted)
        if status is not None:
            # The server's own check of the old value: someone pushed between our look and ours.
            if any(
                w in status
                for w in (
                    "non-fast-forward",
                    "fetch first",
                    "lock",
                    "stale",
                    "failed to update ref",
                )
            ):
                raise NotFastForward()
            raise ForgebotError(f"the repository {self.url} refused the push: {status}")
