"""`forgebot serve` becomes ready without importing the AWS SDK, the Kubernetes client or
Alembic: they load on first use (core/lazy_import.py), which keeps the cold start short."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.lazy_import import lazy_module

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("boto3", "botocore", "kubernetes", "alembic", "mako")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_the_ready_path_imports_none_of_the_heavy_stacks() -> None:
    # What `forgebot serve` imports before it answers /readyz (bot/cli.py, then bot.runtime).
    loaded = _imported_after("import bot.cli, bot.server, bot.runtime")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_listening_path_loads_no_catalog_yaml_or_database() -> None:
    # What `forgebot serve` imports before it answers /healthz.
    loaded = _imported_after("import bot.cli, bot.server")
    assert loaded.isdisjoint({*HEAVY, "yaml", "sqlalchemy", "sqlmodel", "slack_bolt"})


def test_serve_with_a_broken_catalog_lists_the_problems_and_exits_2(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("platform_team: nobody\nteams: []\n", encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "test-secret-0123456789",
            "FORGEBOT_CATALOG": str(catalog),
            "FORGEBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'forgebot.db'}",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "forgebot: the catalog has" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_lazy_module_loads_on_first_use_and_is_then_the_module() -> None:
    loaded = _imported_after(
        "from core.lazy_import import lazy_module\n"
        "colorsys = lazy_module('colorsys')\n"
        "import sys\n"
        "assert 'colorsys' not in sys.modules\n"
        "assert colorsys.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0)\n"
    )
    assert "colorsys" in loaded


def test_a_missing_attribute_is_an_attribute_error() -> None:
    json = lazy_module("json")
    with pytest.raises(AttributeError):
        json.no_such_function  # noqa: B018
    assert json.dumps([1]) == "[1]"
