"""Settings from the environment (and `.env`), and where the catalog is loaded from.

Secrets are `SecretStr`, so a settings object printed or logged never shows them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.durations import Duration

if TYPE_CHECKING:
    from core.catalog import Catalog

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias="SLACK_SIGNING_SECRET"
    )
    slack_app_token: SecretStr | None = Field(default=None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", validation_alias="SLACK_API_URL")
    allowed_app_ids: CommaList = Field(default=[], validation_alias="FORGEBOT_ALLOWED_APP_IDS")
    allowed_team_ids: CommaList = Field(default=[], validation_alias="FORGEBOT_ALLOWED_TEAM_IDS")
    allowed_enterprise_ids: CommaList = Field(
        default=[], validation_alias="FORGEBOT_ALLOWED_ENTERPRISE_IDS"
    )

    database_url: str = Field(
        default="sqlite:///forgebot.db", validation_alias="FORGEBOT_DATABASE_URL"
    )
    catalog_path: Path = Field(
        default=Path("catalog.yaml"), validation_alias=AliasChoices("FORGEBOT_CATALOG")
    )
    host: str = Field(default="0.0.0.0", validation_alias="FORGEBOT_HOST")  # noqa: S104 - a server
    port: int = Field(default=3000, validation_alias="FORGEBOT_PORT")
    api_token: SecretStr | None = Field(default=None, validation_alias="FORGEBOT_API_TOKEN")
    log_format: Literal["json", "console"] = Field(
        default="json", validation_alias="FORGEBOT_LOG_FORMAT"
    )
    log_level: str = Field(default="INFO", validation_alias="FORGEBOT_LOG_LEVEL")

    kubeconfig: str | None = Field(default=None, validation_alias="KUBECONFIG")
    kube_concurrency: int = Field(default=8, validation_alias="FORGEBOT_KUBE_CONCURRENCY")

    prometheus_url: str | None = Field(default=None, validation_alias="PROMETHEUS_URL")
    prometheus_token: SecretStr | None = Field(default=None, validation_alias="PROMETHEUS_TOKEN")
    prometheus_username: str | None = Field(default=None, validation_alias="PROMETHEUS_USERNAME")
    prometheus_password: SecretStr | None = Field(
        default=None, validation_alias="PROMETHEUS_PASSWORD"
    )
    prometheus_timeout: float = Field(default=2.0, validation_alias="PROMETHEUS_TIMEOUT")

    replica: str | None = Field(default=None, validation_alias="FORGEBOT_REPLICA")
    """This process's name among the replicas (default: the host name, i.e. the pod name)."""
    leader_election: Literal["auto", "lease", "advisory-lock", "always"] = Field(
        default="auto", validation_alias="FORGEBOT_LEADER_ELECTION"
    )
    lease_name: str = Field(default="forgebot-scheduler", validation_alias="FORGEBOT_LEASE_NAME")
    lease_namespace: str | None = Field(default=None, validation_alias="FORGEBOT_LEASE_NAMESPACE")
    lease_context: str | None = Field(default=None, validation_alias="FORGEBOT_LEASE_CONTEXT")
    """kubeconfig context holding the Lease outside a cluster (default: in-cluster config)."""
    lease_seconds: float = Field(default=15.0, gt=0, validation_alias="FORGEBOT_LEASE_SECONDS")
    operation_lease_seconds: float = Field(
        default=30.0, gt=0, validation_alias="FORGEBOT_OPERATION_LEASE_SECONDS"
    )
    """How long an operation's owner holds it without renewing (renewed every third of it);
    after that another replica may take it over."""
    recovery_seconds: float = Field(
        default=15.0, gt=0, validation_alias="FORGEBOT_RECOVERY_SECONDS"
    )
    """How often every process looks for operations nobody is running any more."""
    shutdown_seconds: float = Field(
        default=20.0, ge=0, validation_alias="FORGEBOT_SHUTDOWN_SECONDS"
    )
    """SIGTERM budget for in-flight handlers and the Slack outbox (keep it under the pod's
    terminationGracePeriodSeconds)."""

    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    cost_cache_ttl: Duration = Field(
        default=timedelta(hours=6), validation_alias="FORGEBOT_COST_CACHE_TTL"
    )
    cost_forecast: Literal["linear", "cost-explorer"] = Field(
        default="cost-explorer", validation_alias="FORGEBOT_COST_FORECAST"
    )

    github_webhook_secret: SecretStr | None = Field(
        default=None, validation_alias="FORGEBOT_GITHUB_WEBHOOK_SECRET"
    )
    gitlab_webhook_token: SecretStr | None = Field(
        default=None, validation_alias="FORGEBOT_GITLAB_WEBHOOK_TOKEN"
    )
    github_token: SecretStr | None = Field(default=None, validation_alias="FORGEBOT_GITHUB_TOKEN")
    gitlab_token: SecretStr | None = Field(default=None, validation_alias="FORGEBOT_GITLAB_TOKEN")
    github_api_url: str = Field(
        default="https://api.github.com", validation_alias="FORGEBOT_GITHUB_API_URL"
    )
    gitlab_api_url: str = Field(
        default="https://gitlab.com/api/v4", validation_alias="FORGEBOT_GITLAB_API_URL"
    )

    pagerduty_events_url: str = Field(
        default="https://events.pagerduty.com", validation_alias="PAGERDUTY_EVENTS_URL"
    )
    opsgenie_api_url: str = Field(
        default="https://api.opsgenie.com", validation_alias="OPSGENIE_API_URL"
    )
    alertmanager_url: str | None = Field(default=None, validation_alias="ALERTMANAGER_URL")
    """Alertmanager's API, for silences created from alert buttons."""
    alertmanager_token: SecretStr | None = Field(
        default=None, validation_alias="FORGEBOT_ALERTMANAGER_TOKEN"
    )
    """Bearer token Alertmanager's webhook sends to `POST /api/alertmanager`."""
    incident_timeline_reaction: str = Field(
        default="memo", validation_alias="FORGEBOT_INCIDENT_REACTION"
    )
    """Reacting with this emoji (name without colons) adds a message to the incident timeline."""
    alert_route_labels: CommaList = Field(
        default=["service", "team", "namespace"], validation_alias="FORGEBOT_ALERT_ROUTE_LABELS"
    )

    @field_validator(
        "allowed_app_ids",
        "allowed_team_ids",
        "allowed_enterprise_ids",
        "alert_route_labels",
        mode="before",
    )
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def is_embedded_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def catalog(self) -> Catalog:
        from core.catalog import load_catalog  # pydantic models and YAML: not before listening

        return load_catalog(self.catalog_path)
