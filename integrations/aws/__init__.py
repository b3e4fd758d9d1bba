"""The AWS gateway: Cost Explorer reports and forecasts, and off-hours control of EC2
instances, RDS DB instances and Auto Scaling groups.

Services depend on the protocols `CostSource` and `ResourceControl`; `AwsClients` holds the
boto3 session, the clients and the bounded thread pool both gateways share.

The names below load their module on first use (PEP 562), so importing a light part such
as `integrations.aws.cost_types` does not import boto3.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CostExplorerGateway": "integrations.aws.cost_explorer",
    "CostSource": "integrations.aws.cost_explorer",
    "SERVICE": "integrations.aws.cost_types",
    "CostBucket": "integrations.aws.cost_types",
    "CostGroup": "integrations.aws.cost_types",
    "CostQuery": "integrations.aws.cost_types",
    "CostReport": "integrations.aws.cost_types",
    "DateRange": "integrations.aws.cost_types",
    "Forecast": "integrations.aws.cost_types",
    "ForecastMethod": "integrations.aws.cost_types",
    "Granularity": "integrations.aws.cost_types",
    "TagFilter": "integrations.aws.cost_types",
    "ENVIRONMENT_TAG": "integrations.aws.resource_types",
    "AwsResource": "integrations.aws.resource_types",
    "GroupSize": "integrations.aws.resource_types",
    "GroupState": "integrations.aws.resource_types",
    "ResourceKind": "integrations.aws.resource_types",
    "SkippedResource": "integrations.aws.resource_types",
    "SleepResult": "integrations.aws.resource_types",
    "TaggedResources": "integrations.aws.resource_types",
    "AwsResourceGateway": "integrations.aws.resources",
    "ResourceControl": "integrations.aws.resources",
    "AwsClients": "integrations.aws.session",
    "AwsConfig": "integrations.aws.session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
