"""Read and change the one field that carries a version in a desired-state file, touching no
other byte of it.

The file is parsed with PyYAML's composer, whose nodes know where they start and end in the
text; the new value is spliced over the old scalar's span. Comments, key order, quoting style
of the rest of the file and blank lines stay exactly as they were, so the commit's diff is the
one line that changed.

Three ways a file carries a version (`FieldSpec.kind`):

- `kustomize-image`: the `images:` entry of a `kustomization.yaml` whose `name` is the image;
  the version goes in `newTag` (a tag) or `digest` (a `sha256:` digest), the other key is
  replaced when the kind of version changes.
- `helm-value`: a dotted key in a values file (`image.tag`); the version is written as is.
- `yaml-path`: a dotted path with list indices (`spec.template.spec.containers[0].image`),
  optionally in a multi-document file; the value written is the full image reference.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

import yaml

FieldKind = Literal["kustomize-image", "helm-value", "yaml-path"]

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9_.:@/+-]*")


class FieldError(Exception):
    """The file does not hold the field the catalog names; the message says what is missing."""


@dataclass(frozen=True)
class FieldSpec:
    kind: FieldKind
    locator: str
    """The image name (kustomize-image), the dotted key (helm-value) or the path (yaml-path)."""


def parse_path(path: str) -> list[str | int]:
    """`a.b[0].c` -> ['a', 'b', 0, 'c']; raises ValueError on anything else."""
    steps: list[str | int] = []
    position = 0
    for match in _STEP.finditer(path):
        if match.start() != position and path[position : match.start()] != ".":
            raise ValueError(f"“{path}” is not a dotted path like spec.containers[0].image")
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not steps or position != len(path) or path.startswith("."):
        raise ValueError(f"“{path}” is not a dotted path like spec.containers[0].image")
    return steps


def _child(node: yaml.Node, step: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(key node or the item itself, value node) of one step down, or None."""
    if isinstance(step, int):
        if isinstance(node, yaml.SequenceNode) and step < len(node.value):
            item: yaml.Node = node.value[step]
            return item, item
        return None
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == step:
                return key, value
    return None


def _walk(root: yaml.Node, steps: list[str | int]) -> tuple[yaml.Node, yaml.Node] | None:
    node: yaml.Node = root
    found: tuple[yaml.Node, yaml.Node] | None = None
    for step in steps:
        found = _child(node, step)
        if found is None:
            return None
        node = found[1]
    return found


def _documents(text: str) -> list[yaml.Node]:
    try:
        return [d for d in yaml.compose_all(text, Loader=yaml.SafeLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise FieldError(f"the file is not valid YAML: {exc}") from None


def _scalar(node: yaml.Node, where: str) -> yaml.ScalarNode:
    if not isinstance(node, yaml.ScalarNode):
        raise FieldError(f"{where} is not a plain value")
    return node


@dataclass(frozen=True)
class _Located:
    key: yaml.ScalarNode
    value: yaml.ScalarNode
    name: str


def _kustomize_entry(text: str, image: str) -> yaml.MappingNode:
    documents = _documents(text)
    root = documents[0] if documents else None
    images = _child(root, "images") if root is not None else None
    if images is None or not isinstance(images[1], yaml.SequenceNode):
        raise FieldError("the kustomization has no `images:` list")
    for entry in images[1].value:
        name = _child(entry, "name")
        if name is not None and isinstance(name[1], yaml.ScalarNode) and name[1].value == image:
            assert isinstance(entry, yaml.MappingNode)
            return entry
    raise FieldError(f"the kustomization's `images:` has no entry named {image}")


def _locate(text: str, spec: FieldSpec) -> list[_Located]:
    """Every (key, value) that holds the version; the first is the one written."""
    if spec.kind == "kustomize-image":
        entry = _kustomize_entry(text, spec.locator)
        found = []
        for key_name in ("digest", "newTag"):
            pair = _child(entry, key_name)
            if pair is not None:
                key = _scalar(pair[0], key_name)
                found.append(_Located(key, _scalar(pair[1], f"`{key_name}`"), key_name))
        if not found:
            raise FieldError(
                f"the `images:` entry {spec.locator} has no `newTag` or `digest` to change"
            )
        return found
    steps = parse_path(spec.locator)
    hits = [hit for doc in _documents(text) if (hit := _walk(doc, steps)) is not None]
    if not hits:
        raise FieldError(f"the file has no `{spec.locator}`")
    if len(hits) > 1:
        raise FieldError(f"`{spec.locator}` is in {len(hits)} documents of the file; name one")
    key_node, value_node = hits[0]
    return [_Located(_scalar(key_node, "the key"), _scalar(value_node, f"`{spec.locator}`"), "")]


def read_field(text: str, spec: FieldSpec) -> str:
    """The value that the field holds now (for a Kustomize entry: the digest if set, else the tag)."""
    return str(_locate(text, spec)[0].value.value)


def _render(value: str) -> str:
    """A YAML scalar that reads back as exactly `value` (a string)."""
    loaded: object = None
    if _PLAIN_SAFE.fullmatch(value):
        try:
            loaded = yaml.safe_load(value)
        except yaml.YAMLError:
            loaded = None
    if loaded == value:
        return value
    return json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar


def _span(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.index, node.end_mark.index


def set_field(text: str, spec: FieldSpec, value: str) -> str:
    """`text` with the field set to `value` and nothing else changed."""
    located = _locate(text, spec)
    if spec.kind == "kustomize-image":
        wanted = "digest" if value.startswith("sha256:") else "newTag"
        current = next((x for x in located if x.name == wanted), located[0])
        if current.name == wanted:
            start, end = _span(current.value)
            replacement = _render(value)
        else:
            # Switching between a tag and a digest: rewrite the pair in place (`newTag: 1.2`
            # becomes `digest: sha256:...`), keeping its position and indentation.
            start, end = current.key.start_mark.index, current.value.end_mark.index
            replacement = f"{wanted}: {_render(value)}"
        changed = text[:start] + replacement + text[end:]
        if len(located) > 1:
            # Both keys present (kustomize then uses the digest): drop the one not written.
            changed = _drop_pair(changed, spec, "newTag" if wanted == "digest" else "digest")
    else:
        start, end = _span(located[0].value)
        changed = text[:start] + _render(value) + text[end:]
    if read_field(changed, spec) != value:  # pragma: no cover - a guard, never expected
        raise FieldError("the edited file does not read back the new value")
    return changed


def _drop_pair(text: str, spec: FieldSpec, name: str) -> str:
    entry = _kustomize_entry(text, spec.locator)
    pair = _child(entry, name)
    if pair is None:
        return text
    line_start = text.rfind("\n", 0, pair[0].start_mark.index) + 1
    line_end = text.find("\n", pair[1].end_mark.index)
    line_end = len(text) if line_end < 0 else line_end + 1
    if text[line_start : pair[0].start_mark.index].strip(" "):
        return text  # not alone on its line (first key of the item, flow style): leave it
    return text[:line_start] + text[line_end:]
