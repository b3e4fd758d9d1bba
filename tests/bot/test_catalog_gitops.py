"""`delivery: gitops` entries in the catalog: what `forgebot config check` accepts and refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.catalog import CatalogError, parse_catalog

EXAMPLE = Path(__file__).parents[2] / "catalog.example.yaml"


def _with(gitops: dict[str, object] | None, delivery: str = "gitops") -> str:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    workload = data["services"][0]["workloads"]["staging"]
    workload["delivery"] = delivery
    if gitops is not None:
        workload["gitops"] = gitops
    return yaml.safe_dump(data, sort_keys=False)


GOOD = {
    "repository": "https://github.com/acme/desired-state",
    "credentials": "env:GITOPS_TOKEN",
    "file": "apps/checkout/overlays/staging/kustomization.yaml",
    "kustomize_image": "registry.example.com/payments/checkout",
    "controller": {"kind": "argocd", "name": "checkout-staging"},
}


def test_a_gitops_workload_is_accepted() -> None:
    catalog = parse_catalog(_with(GOOD))
    target = catalog.services[0].workloads["staging"].gitops
    assert target is not None and target.branch == "main" and target.provider == "github"
    assert target.controller.where == "argocd"
    assert target.field_label.endswith("(images entry registry.example.com/payments/checkout)")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"repository": "git@github.com:acme/x.git"}, "must be an https:// URL"),
        ({"repository": "https://user:tok@github.com/acme/x"}, "must not hold credentials"),
        ({"credentials": "ghp_0123456789"}, "secret reference"),
        ({"file": "../etc/passwd"}, "relative path inside the repository"),
        ({"helm_value": "image.tag"}, "exactly one field"),
        ({"kustomize_image": None, "yaml_path": "spec..image"}, "dotted path"),
        ({"branch": "-x"}, "not a branch name"),
        ({"controller": {"kind": "spinnaker", "name": "x"}}, "controller.kind"),
    ],
)
def test_bad_gitops_entries_are_reported_with_their_line(
    change: dict[str, object], expected: str
) -> None:
    entry = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(CatalogError) as error:
        parse_catalog(_with(entry), "catalog.yaml")
    assert any(expected in p and p.startswith("catalog.yaml:") for p in error.value.problems), (
        error.value.problems
    )


def test_delivery_and_the_gitops_entry_go_together() -> None:
    with pytest.raises(CatalogError, match="needs a `gitops:` entry"):
        parse_catalog(_with(None))
    with pytest.raises(CatalogError, match="needs `delivery: gitops`"):
        parse_catalog(_with(GOOD, delivery="direct"))
