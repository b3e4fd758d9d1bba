"""`kind: Rollout` workloads in the catalog: what `forgebot config check` accepts and refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.catalog import CatalogError, parse_catalog
from integrations.kubernetes.workload_kinds import rollout_workloads

EXAMPLE = Path(__file__).parents[2] / "catalog.example.yaml"


def _with(kind: object) -> str:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["services"][0]["workloads"]["staging"]["kind"] = kind
    return yaml.safe_dump(data, sort_keys=False)


def test_a_rollout_workload_is_accepted_and_deployments_stay_the_default() -> None:
    catalog = parse_catalog(_with("Rollout"))
    workloads = catalog.services[0].workloads
    assert workloads["staging"].is_rollout and not workloads["prod"].is_rollout
    assert rollout_workloads(catalog) == {("dev-cluster", "checkout-staging", "checkout")}


@pytest.mark.parametrize("kind", ["rollout", "StatefulSet", "argoproj.io/Rollout"])
def test_an_unknown_workload_kind_is_reported_with_its_line(kind: str) -> None:
    with pytest.raises(CatalogError) as error:
        parse_catalog(_with(kind), "catalog.yaml")
    assert any(
        p.startswith("catalog.yaml:") and "kind" in p and "Rollout" in p
        for p in error.value.problems
    ), error.value.problems
