"""Apply and inspect Alembic migrations from inside the bot (`forgebot db upgrade`).

Alembic (with Mako and the SQL dialects it loads) takes longer to import than the rest of the
start-up, so it is imported only to apply migrations. Whether the schema is behind is decided
without it: the database's revision is one `SELECT` on `alembic_version`, and the head is read
from the revision files themselves (`revision` / `down_revision`, parsed, never executed).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


class UnmigratedDatabase(Exception):
    pass


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _assigned(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        target: ast.expr
        value: ast.expr | None
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == name and value is not None:
            return ast.literal_eval(value)
    raise ValueError(f"no {name} assigned")


@cache
def head_revision() -> str:
    """The revision no other revision names as its `down_revision`."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        revisions.add(str(_assigned(tree, "revision")))
        down = _assigned(tree, "down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(d) for d in down)
    heads = sorted(revisions - parents)
    if len(heads) != 1:
        raise RuntimeError(f"expected one migration head, found {heads or 'none'}")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for an empty database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    if len(rows) > 1:
        raise UnmigratedDatabase(
            f"the database has {len(rows)} migration heads; run `forgebot db upgrade`"
        )
    return str(rows[0][0]) if rows else None


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def upgrade_if_behind(engine: Engine) -> bool:
    """Migrate to the head unless the schema is there already; True if migrations ran."""
    if is_current(engine):
        return False
    upgrade(engine)
    return True


def require_current(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        found = current or "an empty database"
        raise UnmigratedDatabase(
            f"the database is at {found}, but this forgebot needs {head}: "
            "run `forgebot db upgrade` (with the same FORGEBOT_DATABASE_URL) and start again"
        )
