"""The CLI fails with one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from bot.cli import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"postgresql://forgebot:hunter22@127.0.0.1:{_closed_port()}/forgebot",
            "forgebot: cannot migrate the database: connection failed",
        ),
        ("mysql://forgebot@127.0.0.1/forgebot", "forgebot: unsupported FORGEBOT_DATABASE_URL"),
        ("not a url", "forgebot: unsupported FORGEBOT_DATABASE_URL"),
    ],
)
def test_db_upgrade_fails_in_one_line(
    url: str, expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORGEBOT_DATABASE_URL", url)
    assert main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "hunter22" not in err


@pytest.fixture
def _root_logging() -> Iterator[None]:
    """`serve` configures logging for the process; put the test run's handlers back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("_root_logging")
def test_serve_needs_the_bot_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "a-signing-secret")
    monkeypatch.setenv("FORGEBOT_CATALOG", "catalog.example.yaml")
    monkeypatch.chdir(__file__.rsplit("/tests/", 1)[0])
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("forgebot: set SLACK_BOT_TOKEN") and err.count("\n") == 1
