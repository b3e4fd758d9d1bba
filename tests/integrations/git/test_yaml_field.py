"""The field editor changes one value and no other byte: comments, quoting, order stay."""

from __future__ import annotations

import difflib

import pytest

from core.yaml_field import FieldError, FieldSpec, parse_path, read_field, set_field
from tests.fixtures.git_server import HELM_LAYOUT, KUSTOMIZE_LAYOUT

KUSTOMIZATION = KUSTOMIZE_LAYOUT["apps/checkout/overlays/staging/kustomization.yaml"]
CHECKOUT = FieldSpec("kustomize-image", "registry.example.com/payments/checkout")


def _changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_a_kustomize_tag_changes_on_its_line_only() -> None:
    assert read_field(KUSTOMIZATION, CHECKOUT) == "1.4.1"
    after = set_field(KUSTOMIZATION, CHECKOUT, "1.4.2")
    assert _changed_lines(KUSTOMIZATION, after) == [
        "-    newTag: 1.4.1   # forgebot sets this",
        "+    newTag: 1.4.2   # forgebot sets this",
    ]
    sidecar = FieldSpec("kustomize-image", "registry.example.com/payments/sidecar")
    assert read_field(after, sidecar) == "2.0", "the other entry is untouched"


def test_a_digest_replaces_the_tag_key_in_place_and_back() -> None:
    digest = "sha256:" + "ab" * 32
    after = set_field(KUSTOMIZATION, CHECKOUT, digest)
    assert _changed_lines(KUSTOMIZATION, after) == [
        "-    newTag: 1.4.1   # forgebot sets this",
        f"+    digest: {digest}   # forgebot sets this",
    ]
    assert read_field(set_field(after, CHECKOUT, "1.5.0"), CHECKOUT) == "1.5.0"


def test_a_helm_value_keeps_its_quotes_when_it_needs_them() -> None:
    values = HELM_LAYOUT["envs/staging/ledger-values.yaml"]
    spec = FieldSpec("helm-value", "image.tag")
    assert read_field(values, spec) == "1.0.0"
    after = set_field(values, spec, "1.1")
    assert _changed_lines(values, after) == [
        '-  tag: "1.0.0"  # forgebot: the deployed version',
        '+  tag: "1.1"  # forgebot: the deployed version',
    ]
    assert read_field(after, spec) == "1.1", "1.1 stays a string, not a float"


def test_a_plain_yaml_path_in_a_multi_document_file() -> None:
    text = "kind: Service\nmetadata: {name: a}\n---\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: r.example.com/a:1\n"
    spec = FieldSpec("yaml-path", "spec.template.spec.containers[0].image")
    after = set_field(text, spec, "r.example.com/a:2")
    assert _changed_lines(text, after) == [
        "-          image: r.example.com/a:1",
        "+          image: r.example.com/a:2",
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (FieldSpec("kustomize-image", "registry.example.com/other"), "no entry named"),
        (FieldSpec("helm-value", "image.tag"), "has no `image.tag`"),
        (FieldSpec("yaml-path", "images[7].newTag"), "has no `images[7].newTag`"),
    ],
)
def test_a_missing_field_is_named(spec: FieldSpec, expected: str) -> None:
    with pytest.raises(FieldError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        set_field(KUSTOMIZATION, spec, "1.0")


@pytest.mark.parametrize("bad", ["", ".a", "a..b", "a[x]", "a[0"])
def test_bad_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="dotted path"):
        parse_path(bad)
