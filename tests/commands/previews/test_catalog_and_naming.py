"""The catalog's `previews` section and the names previews are known by."""

from __future__ import annotations

import pytest

from commands.previews.naming import host_for, image_for, namespace_for
from core.catalog import CatalogError, PreviewSpec, parse_catalog
from integrations.kubernetes.manifests import preview_ingress

BASE = """\
platform_team: platform
teams:
  - name: platform
    channel: C0PLAT
    members: [U0PLAT]
services:
  - name: checkout
    team: platform
    image: registry.example.com/checkout
templates:
  - name: preview
    description: previews
    cluster: dev
    approval: auto
    sizes: {S: {cpu: 1, memory_gib: 2}}
    default_ttl: 2d
    max_ttl: 5d
previews:
  - repository: acme/checkout
    service: checkout
    template: preview
"""


def test_a_valid_previews_section_and_its_lookup() -> None:
    catalog = parse_catalog(BASE + "    host: pr-{number}.example.com\n")
    spec = catalog.preview_for("github", "ACME/Checkout")
    assert spec is not None and spec.service == "checkout" and spec.image_tag == "{sha}"
    assert catalog.preview_for("gitlab", "acme/checkout") is None


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("    host: pr-{nmber}.example.com\n", "unknown placeholder {nmber}"),
        ("    host: pr_{number}.example.com\n", "not a DNS name pattern"),
        ("    host: x.example.com\n    size: M\n", "has no size M"),
        ("    host: x.example.com\n    ttl: 6d\n", "longer than the template's max_ttl"),
        ("    host: x.example.com\n    offhours: sometimes\n", "offhours"),
        ("    host: x.example.com\n    image_tag: 'v/{sha}'\n", "image tag cannot"),
        ("    host: x.example.com\n    repository_typo: x\n", "unknown field"),
    ],
)
def test_config_check_refuses_bad_previews_with_a_line(extra: str, fragment: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(BASE + extra)
    problem = caught.value.problems[0]
    assert fragment in problem, problem
    assert problem.startswith("<catalog>:"), "every problem carries file:line"


def test_unknown_service_or_template_is_refused() -> None:
    text = BASE.replace("service: checkout\n    template", "service: nope\n    template")
    with pytest.raises(CatalogError, match="service “nope” is not defined"):
        parse_catalog(text + "    host: x.example.com\n")


def test_namespaces_are_dns_labels_for_any_service_and_number() -> None:
    assert namespace_for("checkout", 42) == "pr-checkout-42"
    long = namespace_for("a" * 60, 123456789)
    assert len(long) <= 63 and long.startswith("pr-a") and long.endswith("-123456789")
    assert long != namespace_for("a" * 59 + "b", 123456789), "a hash keeps cut names apart"


def test_hosts_and_tags_from_branches_are_safe() -> None:
    spec = PreviewSpec(
        repository="acme/checkout",
        service="checkout",
        template="preview",
        host="{branch}.{team}.preview.example.com",
        image_tag="pr-{number}-{short_sha}",
    )
    host = host_for(spec, "payments", 7, "Feature/ÜBER_fast--x", "abcdef1234567")
    assert host == "feature-ber-fast-x.payments.preview.example.com"
    assert image_for("registry.example.com/checkout", spec, 7, "x", "abcdef1234567") == (
        "registry.example.com/checkout:pr-7-abcdef1"
    )
    rules = preview_ingress("pr-checkout-7", "checkout", host, "nginx")["spec"]["rules"]
    assert rules[0]["host"] == host
