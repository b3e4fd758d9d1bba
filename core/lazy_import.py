"""Import a heavy third-party module on first use instead of at start-up.

The AWS SDK, the Kubernetes client and Alembic together cost about a third of `forgebot
serve`'s start-up in imports, and most processes need them only after they are ready, or
never (no AWS credentials, no cluster in the catalog). A module that uses one writes

    if TYPE_CHECKING:
        import boto3
    else:
        boto3 = lazy_module("boto3")

and keeps calling `boto3.session.Session()`: the first attribute read imports the module.
`bench/import_profile.py` shows what is imported before the server is ready.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """Stands in for the module `name` until an attribute is read; then it is the module."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._lock = threading.Lock()
        self._module: ModuleType | None = None

    def _load(self) -> ModuleType:
        module = self._module
        if module is None:
            with self._lock:  # two threads' first calls import it once
                if self._module is None:
                    self._module = importlib.import_module(self.__name__)
                module = self._module
        return module

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy_module(name: str) -> Any:
    """The module `name`, imported when first used. Typed `Any`: import the real module
    under `TYPE_CHECKING` for the type checker."""
    return LazyModule(name)
