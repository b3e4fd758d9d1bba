"""Names a preview is known by: its namespace, its host and its image tag.

A namespace is `pr-<service>-<number>`, always a DNS-1123 label: when a long service name would
make it longer than 63 characters, the service part is cut and a short hash of the whole name
keeps it unique. A branch goes into a host or a tag only as a slug of safe characters.
"""

from __future__ import annotations

import hashlib
import re

from core.catalog import PreviewSpec

MAX_LABEL = 63


def slug(text: str, limit: int = 40) -> str:
    """Lowercase letters, digits and '-', no leading or trailing '-', at most `limit` long."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return cleaned or "x"


def namespace_for(service: str, number: int) -> str:
    name = f"pr-{slug(service, MAX_LABEL)}-{number}"
    if len(name) <= MAX_LABEL:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    room = MAX_LABEL - len(f"pr--{digest}-{number}")
    return f"pr-{slug(service, room)}-{digest}-{number}"


def _fill(pattern: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: values.get(m.group(1), m.group(0)), pattern)


def host_for(spec: PreviewSpec, team: str, number: int, branch: str, sha: str) -> str:
    values = {
        "number": str(number),
        "service": spec.service,
        "team": team,
        "branch": slug(branch, 30),
        "sha": sha[:12],
        "short_sha": sha[:7],
    }
    labels = [slug(part, MAX_LABEL) for part in _fill(spec.host, values).split(".")]
    return ".".join(labels)[:253]


def image_for(image_repository: str, spec: PreviewSpec, number: int, branch: str, sha: str) -> str:
    values = {
        "number": str(number),
        "service": spec.service,
        "team": "",
        "branch": slug(branch, 60),
        "sha": sha,
        "short_sha": sha[:7],
    }
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", _fill(spec.image_tag, values))[:128]
    return f"{image_repository}:{tag}"
