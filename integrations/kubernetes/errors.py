"""Kubernetes API failures as the bot's own errors, each with a message a person can act on."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from core.errors import Conflict, DependencyUnavailable, ForgebotError, NotFound, UserInputError
from core.lazy_import import lazy_module

if TYPE_CHECKING:
    from kubernetes.client import exceptions as kube_exceptions
    from urllib3 import exceptions as urllib3_exceptions
else:
    # Imported on the first failure: the Kubernetes client is not loaded before it is used.
    kube_exceptions = lazy_module("kubernetes.client.exceptions")
    urllib3_exceptions = lazy_module("urllib3.exceptions")


class KubeForbidden(ForgebotError):
    """The bot's identity (or the impersonated one) lacks an RBAC permission."""


def _status_message(exc: kube_exceptions.ApiException) -> str:
    try:
        body: Any = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.reason or "")
    return str(body.get("message") or exc.reason or "")


def translate(exc: BaseException, *, cluster: str, verb: str, what: str) -> ForgebotError:
    if isinstance(exc, kube_exceptions.ApiException):
        message = _status_message(exc)
        if exc.status == 403:
            return KubeForbidden(
                f"the bot's service account may not {verb} {what} on {cluster} ({message})"
            )
        if exc.status == 404:
            return NotFound(f"{what} was not found on {cluster}")
        if exc.status == 409:
            return Conflict(f"{what} on {cluster}: {message}")
        if exc.status == 422:
            return UserInputError(f"Kubernetes refused {what}: {message}")
        if exc.status == 0 or exc.status is None:
            return DependencyUnavailable(f"cluster {cluster} is unreachable")
        return DependencyUnavailable(f"cluster {cluster} answered {exc.status} to {verb} {what}")
    if isinstance(exc, (urllib3_exceptions.HTTPError, OSError, TimeoutError)):
        return DependencyUnavailable(f"cluster {cluster} is unreachable")
    raise exc
