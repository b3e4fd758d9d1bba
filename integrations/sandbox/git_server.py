"""A real Git server on loopback, for the tests, the benches and the demo: `git http-backend`
(Git's own smart-HTTP CGI program) behind a small threaded HTTP server that demands a token, as
GitHub and GitLab do over HTTPS.

Repositories are bare repositories under a root folder, created with real `git` commands from a
dict of files. The server counts connections (`peak_connections`), keeps each request's method,
path and whether it carried the token (never the token itself), and can run a hook before a
push is accepted, which the tests use to land a competing commit first.

Only fixed arguments reach `git` here; this is sandbox equipment, not the bot.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "glpat-sandbox-0123456789abcdef"
USER = "x-access-token"


def git_binary() -> str | None:
    """`git` on PATH with its http-backend, or None (tests skip, the demo goes without)."""
    found = shutil.which("git")
    if found is None:
        return None
    exec_path = subprocess.run(  # noqa: S603 - our own arguments, binary found on PATH
        [found, "--exec-path"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return found if (Path(exec_path) / "git-http-backend").exists() else None


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run git with fixed arguments (test set-up and inspection only)."""
    result = subprocess.run(  # noqa: S603 - fixed arguments (sandbox set-up only)
        ["git", *args],  # noqa: S607 - git from PATH, as `git_binary` checked
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(cwd or Path.cwd()),
            "GIT_AUTHOR_NAME": "Platform",
            "GIT_AUTHOR_EMAIL": "platform@example.com",
            "GIT_COMMITTER_NAME": "Platform",
            "GIT_COMMITTER_EMAIL": "platform@example.com",
            **(env or {}),
        },
    )
    return result.stdout


@dataclass
class GitServer:
    root: Path
    url: str = ""
    token: str = TOKEN
    peak_connections: int = 0
    open_connections: int = 0
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    """(method, path with query, authorized) of every request."""
    before_push: Callable[[str], None] | None = None
    """Called with the repository name before a push (receive-pack POST) is handed to git."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- repositories ------------------------------------------------------------------------
    def create(self, name: str, files: dict[str, str], branch: str = "main") -> str:
        """A bare repository `name.git` whose first commit holds `files`; returns its URL."""
        bare = self.root / f"{name}.git"
        work = self.root / f"{name}.work"
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
        git("config", "receive.denyNonFastForwards", "true", cwd=bare)
        git("config", "http.receivepack", "true", cwd=bare)
        git("clone", "--quiet", str(bare), str(work))
        for path, text in files.items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        git("checkout", "--quiet", "-b", branch, cwd=work)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", "initial desired state", cwd=work)
        git("push", "--quiet", "origin", branch, cwd=work)
        return self.repo_url(name)

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}.git"

    def commit_directly(self, name: str, path: str, text: str, message: str) -> str:
        """Someone else's commit, pushed with git itself; returns its id."""
        work = self.root / f"{name}.work"
        git("pull", "--quiet", "--ff-only", cwd=work)
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", message, cwd=work)
        git("push", "--quiet", cwd=work)
        return git("rev-parse", "HEAD", cwd=work).strip()

    def merge(self, name: str, head: str, base: str, message: str) -> str:
        """Merge branch `head` into `base` with a merge commit, as a code host's merge button."""
        work = self.root / f"{name}.work"
        git("fetch", "--quiet", "origin", cwd=work)
        git("checkout", "--quiet", base, cwd=work)
        git("reset", "--quiet", "--hard", f"origin/{base}", cwd=work)
        git("merge", "--quiet", "--no-ff", "-m", message, f"origin/{head}", cwd=work)
        git("push", "--quiet", "origin", base, cwd=work)
        return git("rev-parse", "HEAD", cwd=work).strip()

    def branch_head(self, name: str, branch: str) -> str:
        return git("rev-parse", f"refs/heads/{branch}", cwd=self.bare(name)).strip()

    def bare(self, name: str) -> Path:
        return self.root / f"{name}.git"

    def show(self, name: str, rev: str, path: str) -> str:
        return git("show", f"{rev}:{path}", cwd=self.bare(name))

    def head(self, name: str, branch: str = "main") -> str:
        return git("rev-parse", branch, cwd=self.bare(name)).strip()

    # --- serving -----------------------------------------------------------------------------
    def start(self) -> GitServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # an idle keep-alive connection is closed, as real servers do

            def log_message(self, format: str, *args: object) -> None:
                return

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.open_connections += 1
                    server.peak_connections = max(server.peak_connections, server.open_connections)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with server._lock:
                        server.open_connections -= 1

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    try:
                        decoded = base64.b64decode(header[6:]).decode()
                    except ValueError:
                        return False
                    return decoded.partition(":")[2] == server.token
                return header == f"Bearer {server.token}"

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self) -> None:
                authorized = self._authorized()
                with server._lock:
                    server.requests.append((self.command, self.path, authorized))
                body = self._body() if self.command == "POST" else b""
                if not authorized:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="forgebot sandbox git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                name = path.strip("/").split(".git", 1)[0]
                if (
                    self.command == "POST"
                    and path.endswith("/git-receive-pack")
                    and server.before_push is not None
                ):
                    server.before_push(name)
                env = {
                    "PATH": os.environ.get("PATH", ""),
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GIT_CONFIG_NOSYSTEM": "1",
                    "HOME": str(server.root),
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_USER": USER,
                    "REMOTE_ADDR": "127.0.0.1",
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                }
                result = subprocess.run(
                    ["git", "http-backend"],  # noqa: S607 - git from PATH
                    input=body,
                    env=env,
                    capture_output=True,
                    check=False,
                )
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status = 200
                headers: list[tuple[str, str]] = []
                for line in head.decode("latin-1").split("\r\n"):
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif key:
                        headers.append((key, value.strip()))
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("content-length", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
