"""Catalog entries for GitOps delivery: which repository, file and field carry a service's
version in one environment, and which controller (Argo CD or Flux) applies it.

Kept apart from `core.catalog` so that the catalog's main models stay readable; `Workload` and
`Environment` refer to these.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.yaml_field import FieldSpec, parse_path

_BRANCH = re.compile(r"[A-Za-z0-9._/-]+")
_SECRET_REF = re.compile(r"(env:[A-Za-z_][A-Za-z0-9_]*|file:/\S+)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ControllerKind = Literal["argocd", "flux-kustomization", "flux-helmrelease"]


class GitOpsController(_Strict):
    """The object that applies the repository to the cluster and reports its progress."""

    kind: ControllerKind
    name: str = Field(description="the Application, Kustomization or HelmRelease name")
    namespace: str = Field(
        default="", description="its namespace (default: argocd, or flux-system for Flux)"
    )

    @property
    def where(self) -> str:
        return self.namespace or ("argocd" if self.kind == "argocd" else "flux-system")

    @property
    def label(self) -> str:
        return {
            "argocd": "Argo CD Application",
            "flux-kustomization": "Flux Kustomization",
            "flux-helmrelease": "Flux HelmRelease",
        }[self.kind] + f" {self.name}"


class GitOpsTarget(_Strict):
    """Where a service's version lives in Git for one environment (`delivery: gitops`)."""

    repository: str = Field(description="HTTPS URL of the desired-state repository")
    branch: str = "main"
    credentials: str | None = Field(
        default=None,
        description="secret reference holding the access token: env:VARIABLE or file:/path",
    )
    file: str = Field(description="path of the file in the repository")
    kustomize_image: str | None = Field(
        default=None, description="the `images:` entry (by name) whose newTag/digest is set"
    )
    helm_value: str | None = Field(default=None, description="dotted key, e.g. image.tag")
    yaml_path: str | None = Field(
        default=None, description="dotted path to a full image reference, e.g. spec.x[0].image"
    )
    controller: GitOpsController
    via_pull_request: bool | None = Field(
        default=None, description="overrides the environment's `gitops.via_pull_request`"
    )
    code_host: Literal["github", "gitlab"] | None = Field(
        default=None,
        description="pull-request API: github or gitlab (default: from the repository's host)",
    )
    code_host_api: str | None = Field(
        default=None,
        description="API base for self-hosted instances, e.g. https://gitlab.example.com/api/v4",
    )

    @field_validator("repository")
    @classmethod
    def _https(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
        ):
            raise ValueError(f"repository “{v}” must be an https:// URL")
        if parts.username or parts.password:
            raise ValueError(
                "repository URL must not hold credentials: use `credentials: env:VARIABLE`"
            )
        return v.rstrip("/")

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if not _BRANCH.fullmatch(v) or ".." in v or v.startswith(("/", "-")) or v.endswith("/"):
            raise ValueError(f"“{v}” is not a branch name")
        return v

    @field_validator("credentials")
    @classmethod
    def _secret(cls, v: str | None) -> str | None:
        if v is not None and not _SECRET_REF.fullmatch(v):
            raise ValueError(
                "credentials is a secret reference, env:VARIABLE or file:/path (never the token)"
            )
        return v

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        parts = v.split("/")
        if v.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
            raise ValueError(f"file “{v}” must be a relative path inside the repository")
        return v

    @model_validator(mode="after")
    def _one_field(self) -> GitOpsTarget:
        given = [
            x for x in (self.kustomize_image, self.helm_value, self.yaml_path) if x is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "name exactly one field that carries the version: kustomize_image, helm_value "
                "or yaml_path"
            )
        for path in (self.helm_value, self.yaml_path):
            if path is not None:
                parse_path(path)
        return self

    @property
    def provider(self) -> Literal["github", "gitlab"] | None:
        if self.code_host is not None:
            return self.code_host
        host = urlsplit(self.repository).hostname or ""
        if host == "github.com" or host.startswith("github."):
            return "github"
        if "gitlab" in host:
            return "gitlab"
        return None

    @property
    def field(self) -> FieldSpec:
        if self.kustomize_image is not None:
            return FieldSpec("kustomize-image", self.kustomize_image)
        if self.helm_value is not None:
            return FieldSpec("helm-value", self.helm_value)
        assert self.yaml_path is not None
        return FieldSpec("yaml-path", self.yaml_path)

    @property
    def field_label(self) -> str:
        spec = self.field
        what = {
            "kustomize-image": "images entry",
            "helm-value": "values key",
            "yaml-path": "path",
        }[spec.kind]
        return f"{self.file} ({what} {spec.locator})"


class EnvironmentGitOps(_Strict):
    """How GitOps deploys to an environment land."""

    via_pull_request: bool = Field(
        default=False, description="open a pull request; its merge is the deploy"
    )
    approval: Literal["review", "slack"] = Field(
        default="review",
        description="two-person rule: an approving review of the pull request, or Slack approval",
    )
