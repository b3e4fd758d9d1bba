"""Where a service runs: the one lookup of (service, environment) -> workload of the deploy
capability, with one wording for what is not there. Deploys, rollbacks, history, the form and
the operations that resume after a restart all ask here."""

from __future__ import annotations

from dataclasses import dataclass

from core.block_limits import escape
from core.catalog import Catalog, Service, Workload
from core.errors import NotFound


@dataclass(frozen=True)
class Placement:
    """A service's workload in one environment, with the service it belongs to."""

    service: Service
    workload: Workload


def workload(catalog: Catalog, service: str, environment: str, *, usage: str = "") -> Placement:
    """The workload of `service` in `environment`; `NotFound` (saying what exists) otherwise.
    What does not exist is "not found" for everyone, before any permission question."""
    entry = catalog.service(service)
    if entry is None:
        known = ", ".join(s.name for s in catalog.services) or "none"
        raise NotFound(
            f"There is no service called `{escape(service)}` (known: {known}).", usage=usage or None
        )
    found = entry.workloads.get(environment)
    if found is None:
        raise NotFound(where_it_runs(entry, environment), usage=usage or None)
    return Placement(entry, found)


def where_it_runs(service: Service, environment: str) -> str:
    where = ", ".join(service.workloads) or "nowhere yet"
    return f"{service.name} does not run in `{escape(environment)}` (it runs in {where})."
