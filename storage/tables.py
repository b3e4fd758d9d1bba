"""Imports every module that defines tables, so metadata (Alembic, tests) sees them all."""

from storage import cost, models

__all__ = ["cost", "models"]
