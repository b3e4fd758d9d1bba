"""Migrations run only when the schema is behind, decided without importing Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from storage import migrate
from storage.db import make_engine


def test_head_read_from_the_revision_files_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    assert migrate.head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_an_empty_database_is_migrated_and_a_current_one_is_left_alone(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        assert migrate.current_revision(engine) is None
        assert not migrate.is_current(engine)
        assert migrate.upgrade_if_behind(engine) is True
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert migrate.upgrade_if_behind(engine) is False
        migrate.require_current(engine)
    finally:
        engine.dispose()


def test_a_database_one_release_behind_is_brought_to_the_head(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        migrate.upgrade(engine, "0001_foundation")
        assert migrate.current_revision(engine) == "0001_foundation"
        assert migrate.upgrade_if_behind(engine) is True
        assert migrate.is_current(engine)
    finally:
        engine.dispose()
