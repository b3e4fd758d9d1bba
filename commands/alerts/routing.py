"""Which team, service and environment an alert group belongs to, from its labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.catalog import Catalog

ENVIRONMENT_LABELS = ("environment", "env")


@dataclass(frozen=True)
class Route:
    team: str
    channel: str
    service: str
    environment: str


def route(catalog: Catalog, labels: Mapping[str, str], order: Sequence[str]) -> Route:
    """The first label in `order` that names something in the catalog decides; the platform
    team gets what nothing claims."""
    service, team, environment = "", "", ""
    for name in ENVIRONMENT_LABELS:
        if labels.get(name):
            environment = labels[name]
            break
    for label in order:
        value = labels.get(label, "")
        if not value:
            continue
        if label == "team":
            if catalog.team(value) is not None:
                team = value
                break
            continue
        if label == "namespace":
            for entry in catalog.services:
                for env, workload in entry.workloads.items():
                    if workload.namespace == value:
                        service, team = entry.name, entry.team
                        environment = environment or env
                        break
                if service:
                    break
            if service:
                break
            continue
        named = catalog.service(value)
        if named is not None:
            service, team = named.name, named.team
            break
    owned = catalog.service(service) if service else None
    if owned is not None and owned.workloads and not environment:
        environment = "prod" if "prod" in owned.workloads else next(iter(owned.workloads))
    found = catalog.team(team) if team else None
    if found is None:
        found = catalog.team(catalog.platform_team)
    assert found is not None
    return Route(found.name, found.channel, service, environment)
