"""The AWS gateway: Cost Explorer reports and forecasts, and off-hours control of EC2
instances, RDS DB instances and Auto Scaling groups.

Services depend on the protocols `CostSource` and `ResourceControl`; `AwsClients` holds the
boto3 session, the clients and the bounded thread pool both gateways share.
"""

from integrations.aws.cost_explorer import CostExplorerGateway, CostSource
from integrations.aws.cost_types import (
    SERVICE,
    CostBucket,
    CostGroup,
    CostQuery,
    CostReport,
    DateRange,
    Forecast,
    ForecastMethod,
    Granularity,
    TagFilter,
)
from integrations.aws.resource_types import (
    ENVIRONMENT_TAG,
    AwsResource,
    GroupSize,
    GroupState,
    ResourceKind,
    SkippedResource,
    SleepResult,
    TaggedResources,
)
from integrations.aws.resources import AwsResourceGateway, ResourceControl
from integrations.aws.session import AwsClients, AwsConfig

__all__ = [
    "ENVIRONMENT_TAG",
    "SERVICE",
    "AwsClients",
    "AwsConfig",
    "AwsResource",
    "AwsResourceGateway",
    "CostBucket",
    "CostExplorerGateway",
    "CostGroup",
    "CostQuery",
    "CostReport",
    "CostSource",
    "DateRange",
    "Forecast",
    "ForecastMethod",
    "Granularity",
    "GroupSize",
    "GroupState",
    "ResourceControl",
    "ResourceKind",
    "SkippedResource",
    "SleepResult",
    "TagFilter",
    "TaggedResources",
]
