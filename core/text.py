"""Small wording helpers shared by every capability's messages."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 deploy`, `3 deploys`, `0 restores`; `many` for irregular nouns."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
