"""Each external system's gateway, built from the settings: the first half of the
composition root (`bot.composition`). None where a system is not configured."""

from __future__ import annotations

import os

from core.config import Settings
from integrations.alertmanager.silences import AlertmanagerClient
from integrations.aws.resources import AwsResourceGateway, ResourceControl
from integrations.aws.session import AwsClients, AwsConfig
from integrations.codehost.github import GitHubClient
from integrations.codehost.gitlab import GitLabClient
from integrations.codehost.host import CodeHost
from integrations.prometheus import PrometheusClient

_AWS_HINTS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
)


def prometheus_from(settings: Settings) -> PrometheusClient | None:
    if not settings.prometheus_url:
        return None
    return PrometheusClient(
        settings.prometheus_url,
        token=settings.prometheus_token.get_secret_value() if settings.prometheus_token else None,
        username=settings.prometheus_username,
        password=(
            settings.prometheus_password.get_secret_value()
            if settings.prometheus_password
            else None
        ),
        timeout=settings.prometheus_timeout,
    )


def aws_resources_from(settings: Settings) -> ResourceControl | None:
    """Tagged AWS resources sleep too when AWS is configured (an endpoint or credentials)."""
    if settings.aws_endpoint_url or any(os.environ.get(name) for name in _AWS_HINTS):
        return AwsResourceGateway(AwsClients(AwsConfig.from_settings(settings)))
    return None


def alertmanager_from(settings: Settings) -> AlertmanagerClient | None:
    url = settings.alertmanager_url
    return AlertmanagerClient(url) if url else None


def code_hosts(settings: Settings) -> dict[str, CodeHost]:
    """The REST clients for which a token is configured."""
    hosts: dict[str, CodeHost] = {}
    if settings.github_token is not None:
        hosts["github"] = GitHubClient(
            settings.github_api_url, settings.github_token.get_secret_value()
        )
    if settings.gitlab_token is not None:
        hosts["gitlab"] = GitLabClient(
            settings.gitlab_api_url, settings.gitlab_token.get_secret_value()
        )
    return hosts
