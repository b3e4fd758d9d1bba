"""Logging while the shell or the demo owns the terminal: everything goes to a file, and
warnings the user has not already seen are kept as one-line notices, shown between commands
(never in the middle of a form's prompt)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.logs import RedactingFilter, configure_logging


class NoticeHandler(logging.Handler):
    """Keeps WARNING and worse as one line each. A record logged while a request was being
    handled is left out: its user got the reply that explains it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.addFilter(RedactingFilter())
        self.pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "request_id", ""):
            return
        first = record.getMessage().strip().splitlines()
        text = first[0] if first else record.name
        self.pending.append(f"{record.levelname.lower()}: {text[:200]}")

    def add(self, text: str) -> None:
        """A notice of the shell's own (e.g. a sandbox server is ready)."""
        self.pending.append(text)

    def take(self) -> list[str]:
        taken, self.pending = self.pending, []
        return taken


@contextmanager
def logging_to_file(path: Path, level: str = "INFO") -> Iterator[NoticeHandler]:
    """Route every log record to `path` (and notices) for the duration; restore afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as stream:
        configure_logging("console", level, stream=stream)
        notices = NoticeHandler()
        root.addHandler(notices)
        try:
            yield notices
        finally:
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for handler in saved_handlers:
                root.addHandler(handler)
            root.setLevel(saved_level)
