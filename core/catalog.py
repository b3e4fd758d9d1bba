"""The catalog: teams, services, environments, golden-path templates, prices, budgets, schedules.

It is YAML written by the platform team, validated with pydantic, and every error is reported
with the file and line it comes from so that `forgebot config check` can point at it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.catalog_gitops import EnvironmentGitOps, GitOpsTarget
from core.durations import Duration

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
SLACK_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,}")
SLACK_USERGROUP_ID = re.compile(r"S[A-Z0-9]{2,}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _dns_label(value: str, what: str) -> str:
    if len(value) > 63 or DNS_LABEL.fullmatch(value) is None:
        raise ValueError(
            f"{what} “{value}” must be a DNS-1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def _ids(values: list[str], pattern: re.Pattern[str], what: str) -> list[str]:
    for value in values:
        if pattern.fullmatch(value) is None:
            raise ValueError(f"“{value}” is not a Slack {what} ID (IDs, never names, authorize)")
    return values


class KubernetesIdentity(_Strict):
    """Whom the bot impersonates for a team's actions, so it acts with that team's rights."""

    user: str
    groups: list[str] = []

    @field_validator("user")
    @classmethod
    def _not_a_system_user(cls, v: str) -> str:
        # A team acts as itself (or a service account), never as a control-plane identity.
        if v.startswith("system:") and not v.startswith("system:serviceaccount:"):
            raise ValueError(f"forgebot never impersonates {v}: name a team's own identity")
        return v

    @field_validator("groups")
    @classmethod
    def _no_system_groups(cls, v: list[str]) -> list[str]:
        for group in v:
            if group.startswith("system:"):
                raise ValueError(f"forgebot never impersonates the group {group}")
        return v


class Paging(_Strict):
    """Who gets paged when an incident opens: a PagerDuty service (Events API v2 routing key)
    or an Opsgenie team (API key). The key itself stays out of the catalog: `key_env` names
    the environment variable that holds it."""

    provider: Literal["pagerduty", "opsgenie"]
    key_env: str = Field(description="environment variable holding the routing key / API key")
    min_severity: Literal["SEV1", "SEV2", "SEV3", "SEV4"] = Field(
        default="SEV2", description="page for incidents of this severity or worse"
    )


class Team(_Strict):
    name: str
    channel: str
    members: list[str] = []
    usergroup: str | None = None
    oncall: list[str] = []
    oncall_usergroup: str | None = None
    cost_tag: str | None = None
    kubernetes: KubernetesIdentity | None = None
    kubernetes_group: str | None = Field(
        default=None,
        description="Kubernetes group granted edit rights in this team's environments",
    )
    paging: Paging | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _dns_label(v, "team name")

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str) -> str:
        if SLACK_CHANNEL_ID.fullmatch(v) is None:
            raise ValueError(f"channel “{v}” must be a channel ID like C0123ABCD, not a name")
        return v

    @field_validator("members", "oncall")
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        return _ids(v, SLACK_USER_ID, "user")

    @field_validator("usergroup", "oncall_usergroup")
    @classmethod
    def _group(cls, v: str | None) -> str | None:
        if v is not None:
            _ids([v], SLACK_USERGROUP_ID, "user group")
        return v

    @model_validator(mode="after")
    def _someone(self) -> Team:
        if not self.members and self.usergroup is None:
            raise ValueError(f"team {self.name} needs members (user IDs) or a usergroup")
        return self


class Workload(_Strict):
    """Where a service runs in one environment."""

    cluster: str
    namespace: str
    deployment: str
    container: str
    delivery: Literal["direct", "gitops"] = Field(
        default="direct", description="patch the image (direct) or commit to Git (gitops)"
    )
    gitops: GitOpsTarget | None = None

    @field_validator("namespace", "deployment", "container")
    @classmethod
    def _labels(cls, v: str) -> str:
        return _dns_label(v, "Kubernetes name")

    @model_validator(mode="after")
    def _delivery(self) -> Workload:
        if self.delivery == "gitops" and self.gitops is None:
            raise ValueError("delivery: gitops needs a `gitops:` entry (repository, file, field)")
        if self.delivery == "direct" and self.gitops is not None:
            raise ValueError("a `gitops:` entry needs `delivery: gitops`")
        return self


class RatioSli(_Strict):
    """Counters of events: `good`/`total` or `bad`/`total`. Each is a counter selector (the bot
    sums its `increase` over each window) or an expression holding `$window` to use as is."""

    good: str | None = None
    bad: str | None = None
    total: str

    @model_validator(mode="after")
    def _one_numerator(self) -> RatioSli:
        if (self.good is None) == (self.bad is None):
            raise ValueError("a ratio SLI has exactly one of `good` or `bad`, plus `total`")
        return self


class LatencySli(_Strict):
    """A histogram: requests at or under `threshold` seconds are good. `threshold` must be one
    of the histogram's bucket bounds (its `le` label, written as the exporter writes it)."""

    metric: str = Field(
        description="histogram name without _bucket, e.g. http_request_duration_seconds"
    )
    selector: str = Field(default="", description='label matchers, e.g. service="checkout"')
    threshold: str

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", v) is None:
            raise ValueError(f"“{v}” is not a Prometheus metric name")
        return v.removesuffix("_bucket")

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, v: object) -> object:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return repr(float(v)) if isinstance(v, float) else str(v)
        return v

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str) -> str:
        return v.strip().removeprefix("{").removesuffix("}").strip()


def _plain_decimal(value: Decimal) -> Decimal:
    """99.0 -> 99 and 14.40 -> 14.4, without the exponent `normalize` gives 10 (1E+1)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


class Slo(_Strict):
    name: str
    objective: Annotated[
        Decimal, Field(gt=0, lt=100, description="percent, e.g. 99.9 (exact: a decimal)")
    ]
    window: Duration = timedelta(days=30)
    environment: str = Field(default="prod", description="where the SLI is measured")
    ratio: RatioSli | None = None
    latency: LatencySli | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _dns_label(v, "SLO name")

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: Decimal) -> Decimal:
        return _plain_decimal(v)

    @model_validator(mode="after")
    def _one_sli(self) -> Slo:
        if (self.ratio is None) == (self.latency is None):
            raise ValueError(f"SLO {self.name} needs exactly one SLI: `ratio` or `latency`")
        if self.window < timedelta(hours=1):
            raise ValueError(f"SLO {self.name}: a window shorter than 1h is not an SLO window")
        return self

    @property
    def budget_share(self) -> Fraction:
        """The share of events allowed to be bad, exactly: 1/1000 for 99.9."""
        return 1 - Fraction(self.objective) / 100

    @property
    def budget_fraction(self) -> float:
        """`budget_share` as a float, for display and for arithmetic that is only shown."""
        return float(self.budget_share)


class Service(_Strict):
    name: str
    team: str
    image: str = Field(description="image repository, e.g. registry.example.com/payments/checkout")
    bot_managed: bool = Field(
        default=False, description="deploy even when a GitOps controller tracks the workload"
    )
    workloads: dict[str, Workload] = Field(
        default_factory=dict, description="environment name -> where the service runs there"
    )
    slos: list[Slo] = []
    runbook: str | None = Field(default=None, description="runbook URL for on-call")
    paging: Paging | None = Field(default=None, description="overrides the team's paging")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _dns_label(v, "service name")

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        if ":" in v.rsplit("/", 1)[-1] or "@" in v:
            raise ValueError(
                "image is a repository without tag or digest; the version is chosen at deploy"
            )
        return v


class Tier(StrEnum):
    DEV = "dev"
    PREVIEW = "preview"
    STAGING = "staging"
    PROD = "prod"


class FreezeWindow(_Strict):
    """A recurring or one-off period in which deploys are refused (a freeze always wins)."""

    name: str
    timezone: str
    start: str = Field(
        description="ISO date-time in the window's zone, or a weekday time `Fri 16:00`"
    )
    end: str
    reason: str = ""

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _zone(v)


class EnvironmentPolicy(_Strict):
    require_digest: bool = False
    allow_latest: bool = False
    """`latest` is a mutable tag (what runs can change under you): refused unless allowed,
    and never in production."""
    confirm: bool = False
    two_person_rule: bool = False
    offhours: bool = True


class Environment(_Strict):
    name: str
    tier: Tier
    cluster: str
    policy: EnvironmentPolicy = EnvironmentPolicy()
    freeze_windows: list[FreezeWindow] = []
    allowed_channels: list[str] = []
    production: bool | None = Field(
        default=None,
        description="whether DORA counts it as production (default: true for tier prod)",
    )
    gitops: EnvironmentGitOps = EnvironmentGitOps()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _dns_label(v, "environment name")

    @property
    def is_production(self) -> bool:
        """What DORA's four keys measure by default: the `production` flag, else tier prod."""
        return self.production if self.production is not None else self.tier is Tier.PROD

    @model_validator(mode="after")
    def _prod_defaults(self) -> Environment:
        if self.tier is Tier.PROD and self.policy.allow_latest:
            object.__setattr__(
                self, "policy", self.policy.model_copy(update={"allow_latest": False})
            )
        return self


class QuotaSize(_Strict):
    cpu: Annotated[Decimal, Field(gt=0, description="vCPU")]
    memory_gib: Annotated[Decimal, Field(gt=0)]
    pods: int = 50


class Template(_Strict):
    name: str
    description: str
    cluster: str
    approval: Literal["auto", "platform"] = "platform"
    sizes: dict[Literal["S", "M", "L"], QuotaSize]
    default_ttl: Duration
    max_ttl: Duration
    offhours: str | None = Field(
        default=None, description="uptime schedule, e.g. Mon-Fri 08:00-19:00 Europe/Berlin"
    )
    name_prefix: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _dns_label(v, "template name")

    @model_validator(mode="after")
    def _ttls(self) -> Template:
        if self.default_ttl > self.max_ttl:
            raise ValueError("default_ttl is longer than max_ttl")
        if not self.sizes:
            raise ValueError("a template needs at least one size (S, M or L)")
        return self


PREVIEW_PLACEHOLDERS = frozenset({"number", "service", "team", "branch", "sha", "short_sha"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def _placeholders(pattern: str, allowed: frozenset[str], what: str) -> str:
    for name in _PLACEHOLDER.findall(pattern):
        if name not in allowed:
            raise ValueError(
                f"{what} “{pattern}”: unknown placeholder {{{name}}} "
                f"(known: {', '.join('{' + a + '}' for a in sorted(allowed))})"
            )
    return pattern


class PreviewSpec(_Strict):
    """A repository whose pull requests get preview environments (see docs/previews.md)."""

    repository: str = Field(description="owner/name on GitHub, group/project path on GitLab")
    provider: Literal["github", "gitlab"] = "github"
    service: str
    template: str = Field(description="environment template: cluster, sizes, TTL, off-hours")
    size: Literal["S", "M", "L"] = "S"
    ttl: Duration | None = Field(
        default=None, description="extended to this on every push (default: the template's)"
    )
    offhours: str | None = Field(
        default=None, description="uptime schedule (default: the template's)"
    )
    host: str = Field(description="e.g. pr-{number}.{service}.preview.example.com")
    ingress_class: str = "nginx"
    ingress_namespace: str = Field(
        default="ingress-nginx", description="where the ingress controller runs (let through)"
    )
    image_tag: str = Field(default="{sha}", description="tag of the PR's image: {sha}, ...")
    container: str = "app"
    port: Annotated[int, Field(gt=0, lt=65536)] = 8080
    replicas: Annotated[int, Field(ge=1, le=10)] = 1

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        if re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+", v) is None:
            raise ValueError(f"repository “{v}” must look like owner/name (or group/sub/project)")
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        _placeholders(v, PREVIEW_PLACEHOLDERS, "host")
        sample = _PLACEHOLDER.sub("x1", v)
        if len(sample) > 253 or any(
            DNS_LABEL.fullmatch(label) is None or len(label) > 63 for label in sample.split(".")
        ):
            raise ValueError(f"host “{v}” is not a DNS name pattern like pr-{{number}}.example.com")
        return v

    @field_validator("image_tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        _placeholders(v, PREVIEW_PLACEHOLDERS, "image_tag")
        if re.fullmatch(r"[A-Za-z0-9_.{}-]{1,128}", v) is None:
            raise ValueError(f"image_tag “{v}” holds characters an image tag cannot")
        return v

    @field_validator("container", "ingress_namespace")
    @classmethod
    def _label(cls, v: str) -> str:
        return _dns_label(v, "Kubernetes name")

    @field_validator("offhours")
    @classmethod
    def _offhours(cls, v: str | None) -> str | None:
        if v is not None:
            # The schedule grammar has no dependencies; imported here to keep the catalog light.
            from core.schedule import ScheduleError, parse_schedule

            try:
                parse_schedule(v)
            except ScheduleError as exc:
                raise ValueError(str(exc)) from None
        return v


class Pricing(_Strict):
    currency: str = "USD"
    vcpu_hour: Decimal = Decimal("0.0316")
    gib_hour: Decimal = Decimal("0.0042")


class Budget(_Strict):
    team: str
    monthly: Annotated[Decimal, Field(gt=0)]
    service: str | None = None
    environment: str | None = None


class CostSettings(_Strict):
    """How `/forge cost`, budgets and their alerts measure cost."""

    metric: Literal["unblended", "amortized", "net-unblended", "net-amortized"] = Field(
        default="unblended",
        description="Cost Explorer's cost metric: unblended (the bill as charged), amortized "
        "(upfront commitments spread over their term), or net of discounts",
    )


class BurnCondition(_Strict):
    """Fires when the burn rate exceeds `burn` (strictly, as in the SRE workbook's
    `> 14.4 * (1 - objective)`) over both the long and the short window."""

    long: Duration
    short: Duration
    burn: Annotated[Decimal, Field(gt=0, description="burn-rate factor, exact: 14.4 is 144/10")]

    @field_validator("burn")
    @classmethod
    def _burn(cls, v: Decimal) -> Decimal:
        return _plain_decimal(v)


class SloAlerting(_Strict):
    """Multi-window, multi-burn-rate alerts (Google SRE workbook, chapter 5)."""

    page: list[BurnCondition] = [
        BurnCondition(long=timedelta(hours=1), short=timedelta(minutes=5), burn=Decimal("14.4")),
        BurnCondition(long=timedelta(hours=6), short=timedelta(minutes=30), burn=Decimal(6)),
    ]
    ticket: list[BurnCondition] = [
        BurnCondition(long=timedelta(hours=24), short=timedelta(hours=2), burn=Decimal(3)),
        BurnCondition(long=timedelta(days=3), short=timedelta(hours=6), burn=Decimal(1)),
    ]


class Schedules(_Strict):
    timezone: str = "UTC"
    offhours_reminder_lead: Duration = timedelta(minutes=30)
    offhours_interval: Duration = timedelta(minutes=5)
    ttl_sweep_interval: Duration = timedelta(minutes=5)
    ttl_reminders: list[Duration] = [timedelta(hours=24), timedelta(hours=1)]
    budget_alert_time: str = "09:00"
    budget_thresholds: list[int] = [50, 80, 100]
    budget_forecast_thresholds: list[int] = [100]
    slo_alert_interval: Duration = timedelta(minutes=5)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _zone(v)

    @field_validator("budget_alert_time")
    @classmethod
    def _time_of_day(cls, v: str) -> str:
        if re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v) is None:
            raise ValueError(f"“{v}” is not a time of day like 09:00")
        return v

    @field_validator("budget_thresholds", "budget_forecast_thresholds")
    @classmethod
    def _percentages(cls, v: list[int]) -> list[int]:
        if any(t <= 0 or t > 1000 for t in v):
            raise ValueError("thresholds are percentages of the budget, like 50, 80, 100")
        return sorted(set(v))


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"“{name}” is not an IANA time zone (e.g. Europe/Berlin, UTC)") from None
    return name


class Catalog(_Strict):
    platform_team: str
    teams: list[Team]
    services: list[Service] = []
    environments: list[Environment] = []
    templates: list[Template] = []
    pricing: Pricing = Pricing()
    registries: list[str] = Field(
        default_factory=list, description="image registries deploys may use"
    )
    budgets: list[Budget] = []
    cost: CostSettings = CostSettings()
    schedules: Schedules = Schedules()
    slo_alerting: SloAlerting = SloAlerting()
    holidays: list[date] = []
    previews: list[PreviewSpec] = []

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        from core.catalog_checks import reference_problems

        problems = reference_problems(self.model_dump(mode="json"))
        if problems:
            raise ValueError(REFERENCES + "; ".join(message for _, message in problems))
        self._check_previews()
        return self

    def _check_previews(self) -> None:
        _unique(
            [f"{p.provider}:{p.repository.lower()}" for p in self.previews], "preview repository"
        )
        for spec in self.previews:
            where = f"preview {spec.repository}"
            if self.service(spec.service) is None:
                raise ValueError(f"{where}: service “{spec.service}” is not defined")
            template = self.template(spec.template)
            if template is None:
                raise ValueError(f"{where}: template “{spec.template}” is not defined")
            if spec.size not in template.sizes:
                raise ValueError(
                    f"{where}: template {template.name} has no size {spec.size} "
                    f"(it has {', '.join(template.sizes)})"
                )
            if spec.ttl is not None and spec.ttl > template.max_ttl:
                raise ValueError(f"{where}: ttl is longer than the template's max_ttl")

    def preview_for(self, provider: str, repository: str) -> PreviewSpec | None:
        """The preview entry of a repository (names compare case-insensitively, as hosts do)."""
        wanted = repository.lower()
        return next(
            (p for p in self.previews if p.provider == provider and p.repository.lower() == wanted),
            None,
        )

    # Look-ups used everywhere; the catalog is small, so linear scans are fine and obvious.
    def team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.name == name), None)

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def environment(self, name: str) -> Environment | None:
        return next((e for e in self.environments if e.name == name), None)

    def template(self, name: str) -> Template | None:
        return next((t for t in self.templates if t.name == name), None)

    def teams_of_user(self, user_id: str) -> list[Team]:
        """Teams that list the user directly (user groups are resolved by bot.auth)."""
        return [t for t in self.teams if user_id in t.members]

    def clusters(self) -> list[str]:
        names = {e.cluster for e in self.environments} | {t.cluster for t in self.templates}
        for service in self.services:
            names |= {w.cluster for w in service.workloads.values()}
        return sorted(names)


def _unique(names: list[str], what: str) -> set[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} “{name}” is defined twice")
        seen.add(name)
    return seen


# --- loading with line numbers ---------------------------------------------------------------


REFERENCES = "cross references: "
"""Marks the model's summary of the reference problems, which `parse_catalog` reports one by
one at their own lines instead."""


class CatalogError(Exception):
    """The catalog cannot be used; `problems` are `file:line: message` strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _line_map(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, (*path, index), lines)


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int:
    # pydantic puts model-validator errors at the model's own path; the longest known
    # prefix of the error's location is the most precise line we have.
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1


def _describe(error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
    return f"{where}: {message}" if where else message


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise CatalogError([f"{source}:{line}: YAML syntax: {exc.problem}"]) from None
    if not isinstance(data, dict) or node is None:
        raise CatalogError([f"{source}:1: the catalog must be a YAML mapping"])
    from core.catalog_checks import reference_problems

    lines: dict[tuple[Any, ...], int] = {}
    _line_map(node, (), lines)
    # Every problem in one run: the schema's and the cross references', each at its own line.
    found = [
        (_line_for(loc, lines), f"{'.'.join(str(p) for p in loc)}: {message}")
        for loc, message in reference_problems(data)
    ]
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        found += [
            (_line_for(tuple(e["loc"]), lines), _describe(e))
            for e in exc.errors()
            if not str(e["msg"]).removeprefix("Value error, ").startswith(REFERENCES)
        ]
    else:
        if not found:
            return catalog
    raise CatalogError([f"{source}:{line}: {message}" for line, message in sorted(found)])


def load_catalog(path: Path) -> Catalog:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError([f"{path}: cannot read the catalog: {exc.strerror}"]) from None
    return parse_catalog(text, str(path))
