"""moto in server mode as the sandbox AWS, and the data the demo and the tests put into it.

moto tracks no cost. Its configuration API queues GetCostAndUsage answers instead: each
request whose body moto has not seen takes the next queued answer, and a request with a body
seen before gets that same answer again. A second page is its own request (its body carries
the NextPageToken), so it takes the next answer. Queue answers in the order the queries
will be made; `DemoCostModel` answers each query from one consistent set of daily costs, so
totals agree whichever way they are grouped.

moto does not implement GetCostForecast (or ListCostAllocationTags): it answers HTTP 500.
The demo runs the bot with `FORGEBOT_COST_FORECAST=linear`, which never asks for one.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3

from integrations.aws.cost_types import SERVICE, CostQuery, DateRange, Granularity
from integrations.aws.cost_wire import cost_and_usage_request, group_definition
from integrations.aws.resource_types import ENVIRONMENT_TAG, GroupSize
from integrations.aws.session import AwsClients, AwsConfig

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_rds import RDSClient

COST_RESULTS_PATH = "/moto-api/static/ce/cost-and-usage-results"
RESET_PATH = "/moto-api/reset"
METRIC = "UnblendedCost"
AMOUNT_PLACES = Decimal("0.0000000001")

EC2_COMPUTE = "Amazon Elastic Compute Cloud - Compute"
RDS = "Amazon Relational Database Service"
S3 = "Amazon Simple Storage Service"
EKS = "Amazon Elastic Container Service for Kubernetes"
CLOUDWATCH = "AmazonCloudWatch"
EC2_OTHER = "EC2 - Other"

# A team's (or, under "", untagged) steady daily spend per service, in USD, on a weekday.
DEMO_DAILY_SPEND: Mapping[str, Mapping[str, Decimal]] = {
    "payments": {EC2_COMPUTE: Decimal("92.40"), RDS: Decimal("48.10"), S3: Decimal("6.25")},
    "search": {EC2_COMPUTE: Decimal("55.70"), EKS: Decimal("7.20"), S3: Decimal("11.35")},
    "platform": {
        EKS: Decimal("14.40"),
        EC2_COMPUTE: Decimal("171.30"),
        CLOUDWATCH: Decimal("22.80"),
        EC2_OTHER: Decimal("18.95"),
    },
    "": {CLOUDWATCH: Decimal("4.10"), EC2_OTHER: Decimal("9.60")},
}
WEEKEND_FACTOR = Decimal("0.6")
SANDBOX_IMAGE_NAME = "forgebot-sandbox-image"


# moto server


def start_moto(port: int = 0) -> tuple[str, Callable[[], None]]:
    """Start moto's server on 127.0.0.1 (port 0 picks a free one): its URL and a stop function."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto is a development dependency
        raise RuntimeError("the AWS sandbox needs moto[server] (a dev dependency)") from exc
    # moto loads its ~1300 default images into every fresh EC2 backend, which costs about
    # 1.5 s after each reset; the sandbox registers the one image it needs instead.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    # Werkzeug logs every request at INFO, and a traceback for every action moto does not
    # implement: a sandbox server's log is not the bot's, so none of it is shown or kept.
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        logging.getLogger(name).propagate = False
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    return f"http://{host}:{bound_port}", server.stop


def reset_moto(endpoint_url: str) -> None:
    """Forget every resource and queued answer (moto's own reset API)."""
    _post(endpoint_url, RESET_PATH, {})


def queue_cost_and_usage_results(endpoint_url: str, results: Sequence[Mapping[str, Any]]) -> None:
    """Append GetCostAndUsage answers to moto's queue, served one per new request, in order."""
    _post(endpoint_url, COST_RESULTS_PATH, {"results": list(results)})


def _post(endpoint_url: str, path: str, payload: Mapping[str, Any]) -> None:
    if not endpoint_url.startswith(("http://127.0.0.1", "http://localhost")):
        raise ValueError(f"the sandbox only talks to a local moto, not {endpoint_url}")
    request = urllib.request.Request(  # noqa: S310 - loopback only, checked above
        endpoint_url.rstrip("/") + path,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        if response.status not in (200, 201):
            raise RuntimeError(f"moto answered {response.status} to {path}")


# GetCostAndUsage answers


def cost_metric(
    amount: Decimal, unit: str = "USD", metric: str = METRIC
) -> dict[str, dict[str, str]]:
    return {metric: {"Amount": _amount_text(amount), "Unit": unit}}


def tag_group_key(key: str, value: str) -> str:
    """How Cost Explorer names a tag group: "team$payments", or "team$" for untagged cost."""
    return f"{key}${value}"


def result_by_time(
    period: DateRange,
    *,
    total: Decimal | None = None,
    groups: Mapping[str | tuple[str, ...], Decimal] | None = None,
    estimated: bool = False,
    unit: str = "USD",
    metric: str = METRIC,
) -> dict[str, Any]:
    """One ResultsByTime entry: `total` when ungrouped, `groups` (by group key) when grouped;
    as in Cost Explorer, a grouped entry has an empty Total."""
    return {
        "TimePeriod": {"Start": period.start.isoformat(), "End": period.end.isoformat()},
        "Total": cost_metric(total, unit, metric) if total is not None else {},
        "Groups": [
            {
                "Keys": list(key) if isinstance(key, tuple) else [key],
                "Metrics": cost_metric(amount, unit, metric),
            }
            for key, amount in (groups or {}).items()
        ],
        "Estimated": estimated,
    }


def cost_and_usage_response(
    results: Sequence[Mapping[str, Any]],
    *,
    group_by: str | None = None,
    next_page_token: str | None = None,
    then_by: str | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "GroupDefinitions": [group_definition(g) for g in (group_by, then_by) if g is not None],
        "ResultsByTime": list(results),
        "DimensionValueAttributes": [],
    }
    if next_page_token is not None:
        response["NextPageToken"] = next_page_token
    return response


def paginate(response: Mapping[str, Any], per_page: int) -> list[dict[str, Any]]:
    """Split an answer into pages the way Cost Explorer does: by groups when grouped (one
    day's groups may continue on the next page), by time periods otherwise."""
    if per_page < 1:
        raise ValueError("per_page must be at least 1")
    results = list(response["ResultsByTime"])
    grouped = any(result.get("Groups") for result in results)
    chunks = _chunk_groups(results, per_page) if grouped else _chunks(results, per_page)
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        page = {**response, "ResultsByTime": chunk}
        page.pop("NextPageToken", None)
        if number < len(chunks):
            page["NextPageToken"] = f"page-{number + 1}"
        pages.append(page)
    return pages


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]


def _chunk_groups(results: list[Mapping[str, Any]], size: int) -> list[list[Any]]:
    flat = [(result, group) for result in results for group in result.get("Groups", [])]
    pages: list[list[Any]] = []
    for chunk in _chunks(flat, size):
        entries: list[dict[str, Any]] = []
        for result, group in chunk:
            if not entries or entries[-1]["TimePeriod"] != result["TimePeriod"]:
                entries.append({**result, "Groups": []})
            entries[-1]["Groups"].append(group)
        pages.append(entries)
    return pages


def _amount_text(amount: Decimal) -> str:
    # Cost Explorer sends amounts as plain decimal strings with up to ten decimals.
    text = format(amount.quantize(AMOUNT_PLACES), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# A consistent set of demo costs


@dataclass(frozen=True)
class DemoCostModel:
    """Daily costs by team tag and service up to (not including) `today`; days in today's
    month are marked Estimated, as Cost Explorer marks an unfinished bill."""

    today: date
    tag_key: str = "team"
    daily_spend: Mapping[str, Mapping[str, Decimal]] = field(
        default_factory=lambda: DEMO_DAILY_SPEND
    )

    def day_cost(self, day: date) -> list[tuple[str, str, Decimal]]:
        """(team, service, amount) for one day; nothing for today and later."""
        if day >= self.today:
            return []
        factor = WEEKEND_FACTOR if day.weekday() >= 5 else Decimal(1)
        return [
            (team, service, amount * factor)
            for team, services in self.daily_spend.items()
            for service, amount in services.items()
        ]

    def respond(self, query: CostQuery) -> dict[str, Any]:
        """The whole GetCostAndUsage answer for `query` (one page; see `paginate`)."""
        results = [self._result(query, period) for period in _buckets(query)]
        return cost_and_usage_response(results, group_by=query.group_by, then_by=query.then_by)

    def _result(self, query: CostQuery, period: DateRange) -> dict[str, Any]:
        sums: dict[str | tuple[str, ...], Decimal] = {}
        for day in _days(period):
            for team, service, amount in self.day_cost(day):
                if not self._matches(query, team):
                    continue
                key: str | tuple[str, ...] = self._group_key(query.group_by, team, service)
                if query.then_by is not None:
                    key = (str(key), self._group_key(query.then_by, team, service))
                sums[key] = sums.get(key, Decimal(0)) + amount
        estimated = period.end > self.today.replace(day=1)
        metric = query.metric.usage_name
        if query.group_by is None:
            return result_by_time(
                period, total=sum(sums.values(), Decimal(0)), estimated=estimated, metric=metric
            )
        return result_by_time(
            period, groups=dict(sorted(sums.items())), estimated=estimated, metric=metric
        )

    def _matches(self, query: CostQuery, team: str) -> bool:
        if query.filter_tag is None:
            return True
        return query.filter_tag.key == self.tag_key and query.filter_tag.value == team

    def _group_key(self, group_by: str | None, team: str, service: str) -> str:
        if group_by is None:
            return ""
        if group_by == SERVICE:
            return service
        if group_by == self.tag_key:
            return tag_group_key(self.tag_key, team)
        return tag_group_key(group_by, "")


def seed_demo_costs(
    endpoint_url: str,
    queries: Iterable[CostQuery],
    *,
    model: DemoCostModel,
    per_page: int | None = None,
) -> int:
    """Queue the answers to `queries`, in the order they will be asked, split into pages of
    `per_page` groups if given. Returns how many answers (pages) were queued."""
    answers: list[dict[str, Any]] = []
    seen: set[str] = set()
    for query in queries:
        # A repeated query is answered from moto's memory of its body, not from the queue.
        body = json.dumps(cost_and_usage_request(query), sort_keys=True)
        if body in seen:
            continue
        seen.add(body)
        response = model.respond(query)
        answers.extend(paginate(response, per_page) if per_page else [response])
    queue_cost_and_usage_results(endpoint_url, answers)
    return len(answers)


def _buckets(query: CostQuery) -> list[DateRange]:
    period = query.period
    if query.granularity is Granularity.DAILY:
        return [DateRange(start=day, end=day + timedelta(days=1)) for day in _days(period)]
    buckets = []
    start = period.start
    while start < period.end:
        month = DateRange.month_of(start)
        buckets.append(DateRange(start=start, end=min(month.end, period.end)))
        start = month.end
    return buckets


def _days(period: DateRange) -> list[date]:
    return [period.start + timedelta(days=offset) for offset in range(period.days)]


# Environment resources


@dataclass(frozen=True)
class SeededEnvironment:
    name: str
    instance_ids: tuple[str, ...]
    db_instance_ids: tuple[str, ...]
    group_names: tuple[str, ...]


class SandboxAws:
    """boto3 clients for a local moto, with moto's dummy credentials (see `sandbox_aws`)."""

    def __init__(self, endpoint_url: str, region: str = "us-east-1") -> None:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
        )
        self.ec2: EC2Client = session.client("ec2", endpoint_url=endpoint_url)
        self.rds: RDSClient = session.client("rds", endpoint_url=endpoint_url)
        self.autoscaling: AutoScalingClient = session.client(
            "autoscaling", endpoint_url=endpoint_url
        )

    def image_id(self) -> str:
        """The sandbox's own machine image, registered on first use."""
        images = self.ec2.describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [SANDBOX_IMAGE_NAME]}]
        )["Images"]
        if images:
            return images[0]["ImageId"]
        return self.ec2.register_image(
            Name=SANDBOX_IMAGE_NAME, Description="forgebot sandbox image"
        )["ImageId"]


def sandbox_clients(endpoint_url: str, region: str = "us-east-1") -> AwsClients:
    """The gateways' clients for the demo: moto's endpoint and dummy credentials passed
    explicitly, so the demo needs no AWS variables in its environment."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    return AwsClients(AwsConfig(region=region, endpoint_url=endpoint_url), session=session)


@functools.cache
def sandbox_aws(endpoint_url: str, region: str = "us-east-1") -> SandboxAws:
    """One set of clients per moto and region: building boto3 clients takes a tenth of a
    second each, and they are thread-safe, so they are shared."""
    return SandboxAws(endpoint_url, region)


def seed_environment_resources(
    endpoint_url: str,
    environment: str,
    *,
    region: str = "us-east-1",
    tag_key: str = ENVIRONMENT_TAG,
    instances: int = 1,
    database: bool = True,
    group_size: GroupSize | None = GroupSize(min_size=1, max_size=3, desired_capacity=2),
) -> SeededEnvironment:
    """EC2 instances, an RDS PostgreSQL instance and an Auto Scaling group tagged
    `tag_key=environment`, as an environment template would create them."""
    aws = sandbox_aws(endpoint_url, region)
    instance_ids = _launch_instances(aws, environment, tag_key, instances) if instances else ()
    db_ids = (_create_database(aws, environment, tag_key),) if database else ()
    group_names: tuple[str, ...] = ()
    if group_size is not None:
        group_names = (_create_group(aws, environment, tag_key, group_size),)
    return SeededEnvironment(environment, instance_ids, db_ids, group_names)


def _launch_instances(
    aws: SandboxAws, environment: str, tag_key: str, count: int
) -> tuple[str, ...]:
    launched = aws.ec2.run_instances(
        ImageId=aws.image_id(),
        InstanceType="t3.small",
        MinCount=count,
        MaxCount=count,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": tag_key, "Value": environment},
                    {"Key": "Name", "Value": environment},
                ],
            }
        ],
    )
    return tuple(instance["InstanceId"] for instance in launched["Instances"])


def _create_database(aws: SandboxAws, environment: str, tag_key: str) -> str:
    db_id = f"{environment}-db"
    aws.rds.create_db_instance(
        DBInstanceIdentifier=db_id,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="forgebot",
        MasterUserPassword="sandbox-only-password",
        AllocatedStorage=20,
        Tags=[{"Key": tag_key, "Value": environment}],
    )
    return db_id


def _create_group(aws: SandboxAws, environment: str, tag_key: str, size: GroupSize) -> str:
    name = f"{environment}-workers"
    template = f"{environment}-workers-template"
    aws.ec2.create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": aws.image_id(), "InstanceType": "t3.small"},
    )
    aws.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": template},
        MinSize=size.min_size,
        MaxSize=size.max_size,
        DesiredCapacity=size.desired_capacity,
        AvailabilityZones=[f"{aws.ec2.meta.region_name}a"],
        Tags=[
            {
                "ResourceId": name,
                "ResourceType": "auto-scaling-group",
                "Key": tag_key,
                "Value": environment,
                "PropagateAtLaunch": True,
            }
        ],
    )
    return name
