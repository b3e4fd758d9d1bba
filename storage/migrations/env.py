"""Alembic environment: forgebot's tables, on the engine the bot itself would use."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import storage.tables  # noqa: F401 - registers every table on SQLModel.metadata
from storage.db import make_engine

target_metadata = SQLModel.metadata


def _include(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # APScheduler creates and owns its job table; migrations leave it alone.
    return not (type_ == "table" and name == "apscheduler_jobs")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get(
        "FORGEBOT_DATABASE_URL", "sqlite:///forgebot.db"
    )
    engine = make_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
