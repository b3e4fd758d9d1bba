"""Errors with a message meant for a person. Anything else is a bug: logged, never shown."""

from __future__ import annotations


class ForgebotError(Exception):
    """Base: `str(error)` is safe and useful to show in Slack."""


class UserInputError(ForgebotError):
    """The input cannot be used; the message says how to fix it."""

    def __init__(self, message: str, *, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class NotFound(UserInputError):
    pass


class NotAuthorized(ForgebotError):
    pass


class Conflict(ForgebotError):
    """The action clashes with the current state (already decided, already running...)."""


class DependencyUnavailable(ForgebotError):
    """A system forgebot depends on is unreachable or failing; try again later."""

    retryable = True
    """False when waiting will not help (the dependency is not configured at all)."""
