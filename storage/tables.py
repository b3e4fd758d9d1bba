"""Imports every module that defines tables, so metadata (Alembic, tests) sees them all."""

from storage import models, offhours

__all__ = ["models", "offhours"]
