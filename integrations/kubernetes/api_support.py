"""Which Kubernetes APIs forgebot calls, the release that first served each, and a clear error
when a cluster's API server lacks one.

An API server that does not serve a group/version/resource answers a request for it with a
bare 404 ("the server could not find the requested resource", no object name), which the
client reports like any missing object. Without this module a CronJob listing on a 1.20
server reads as "CronJobs in shop was not found". With it the person is told which API is
missing, since which Kubernetes release it exists, and which range forgebot supports.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import DependencyUnavailable
from core.lazy_import import lazy_module

if TYPE_CHECKING:
    from kubernetes.client import exceptions as kube_exceptions
else:
    kube_exceptions = lazy_module("kubernetes.client.exceptions")

T = TypeVar("T")
SUPPORTED = "1.23 or newer"
NOT_SERVED = "the server could not find the requested resource"


@dataclass(frozen=True)
class RequiredApi:
    group_version: str
    resource: str
    since: str
    """The first Kubernetes minor release that serves it."""
    used_for: str


# Only those a supported-but-old cluster may lack; core/v1, apps/v1, rbac/v1, networking/v1 and
# coordination/v1 have been served since long before the oldest release anyone runs.
REQUIRED = (
    RequiredApi(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "1.23",
        "the deploy gate's autoscaler check and off-hours' HPA floors",
    ),
    RequiredApi(
        "batch/v1", "cronjobs", "1.21", "workload listings and off-hours' CronJob suspension"
    ),
)


class ApiNotServed(DependencyUnavailable):
    """The cluster's API server does not serve an API forgebot needs (it is too old)."""

    def __init__(self, cluster: str, group_version: str, resource: str) -> None:
        known = next(
            (r for r in REQUIRED if (r.group_version, r.resource) == (group_version, resource)),
            None,
        )
        since = f"; Kubernetes {known.since} and newer serve it" if known else ""
        super().__init__(
            f"cluster {cluster} does not serve {resource} in {group_version}{since}. "
            f"forgebot supports Kubernetes {SUPPORTED}: upgrade the cluster"
        )
        self.cluster, self.group_version, self.resource = cluster, group_version, resource


def not_served(exc: BaseException) -> bool:
    """A 404 about the API itself, not about a named object."""
    if not isinstance(exc, kube_exceptions.ApiException) or exc.status != 404:
        return False
    try:
        body: Any = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return False
    details = body.get("details") or {}
    return str(body.get("message", "")).startswith(NOT_SERVED) and not details.get("name")


def served(cluster: str, group_version: str, resource: str, call: Callable[[], T]) -> T:
    """Run `call` (one request for `resource`), raising ApiNotServed when the API is missing."""
    try:
        return call()
    except kube_exceptions.ApiException as exc:
        if not_served(exc):
            raise ApiNotServed(cluster, group_version, resource) from None
        raise


def missing_apis(api: Any, cluster: str) -> list[ApiNotServed]:
    """Which of `REQUIRED` the cluster lacks, from its discovery documents (blocking)."""
    from kubernetes import client

    lacking: list[ApiNotServed] = []
    for required in REQUIRED:
        group, _, version = required.group_version.rpartition("/")
        # client.AutoscalingV2Api, client.BatchV1Api...: each has get_api_resources().
        typed = getattr(client, f"{group.split('.')[0].capitalize()}{version.capitalize()}Api")
        try:
            resources = typed(api).get_api_resources(_request_timeout=(3.0, 15.0))
            names = {r.name for r in resources.resources or []}
        except kube_exceptions.ApiException as exc:
            if exc.status != 404:
                raise
            names = set()
        if required.resource not in names:
            lacking.append(ApiNotServed(cluster, required.group_version, required.resource))
    return lacking
