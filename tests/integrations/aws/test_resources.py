"""Off-hours resources against moto in server mode: found by tag, put to sleep, woken from a
stored record, with every state read back through boto3 rather than from the gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from core.errors import NotFound
from integrations.aws.errors import AwsResourceNotFound
from integrations.aws.resource_types import (
    ENVIRONMENT_TAG,
    AwsResource,
    GroupSize,
    GroupState,
    ResourceKind,
    SleepResult,
)
from integrations.aws.resources import AwsResourceGateway
from integrations.aws.session import AwsClients
from integrations.sandbox.aws_seed import (
    SandboxAws,
    SeededEnvironment,
    sandbox_aws,
    seed_environment_resources,
)
from tests.fixtures.aws import REGION, MotoServer

if TYPE_CHECKING:
    from mypy_boto3_rds.type_defs import TagTypeDef

ORIGINAL = GroupSize(min_size=1, max_size=3, desired_capacity=2)


@pytest.fixture
def gateway(moto_clients: AwsClients) -> AwsResourceGateway:
    return AwsResourceGateway(moto_clients)


@pytest.fixture
def sandbox(moto_aws: MotoServer) -> SandboxAws:
    return sandbox_aws(moto_aws.url, REGION)


@pytest.fixture
def environment(moto_aws: MotoServer) -> SeededEnvironment:
    seeded = seed_environment_resources(moto_aws.url, "pv-1", group_size=ORIGINAL)
    # A neighbour with the same tag key must never be touched.
    seed_environment_resources(moto_aws.url, "pv-2", database=False, group_size=None)
    return seeded


def instance_state(sandbox: SandboxAws, instance_id: str) -> str:
    reservations = sandbox.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def db_state(sandbox: SandboxAws, db_id: str) -> str:
    return sandbox.rds.describe_db_instances(DBInstanceIdentifier=db_id)["DBInstances"][0][
        "DBInstanceStatus"
    ]


def group_size(sandbox: SandboxAws, name: str) -> GroupSize:
    group = sandbox.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ][0]
    return GroupSize(
        min_size=group["MinSize"],
        max_size=group["MaxSize"],
        desired_capacity=group["DesiredCapacity"],
    )


async def test_finds_an_environments_resources_by_tag(
    gateway: AwsResourceGateway, environment: SeededEnvironment
) -> None:
    found = await gateway.find_tagged(ENVIRONMENT_TAG, "pv-1")

    by_kind = {resource.kind: resource for resource in found.resources}
    assert len(found.resources) == 3
    [instance_id] = environment.instance_ids
    assert by_kind[ResourceKind.EC2_INSTANCE].id == instance_id
    assert by_kind[ResourceKind.EC2_INSTANCE].name == "pv-1"
    assert by_kind[ResourceKind.EC2_INSTANCE].state in ("pending", "running")
    assert by_kind[ResourceKind.RDS_INSTANCE].id == "pv-1-db"
    assert by_kind[ResourceKind.RDS_INSTANCE].state == "available"
    assert by_kind[ResourceKind.AUTO_SCALING_GROUP].id == "pv-1-workers"
    assert by_kind[ResourceKind.AUTO_SCALING_GROUP].size == ORIGINAL
    assert by_kind[ResourceKind.AUTO_SCALING_GROUP].state == GroupState.IN_SERVICE
    assert all(resource.region == REGION for resource in found.resources)
    # The group's own instances carry the propagated tag; the group is scaled instead.
    assert len(found.skipped) == ORIGINAL.desired_capacity
    assert {s.kind for s in found.skipped} == {ResourceKind.EC2_INSTANCE}
    assert all("Auto Scaling group pv-1-workers" in s.reason for s in found.skipped)


async def test_an_unknown_environment_has_nothing(
    gateway: AwsResourceGateway, environment: SeededEnvironment
) -> None:
    found = await gateway.find_tagged(ENVIRONMENT_TAG, "pv-404")

    assert found.resources == () and found.skipped == ()


async def test_sleep_then_wake_from_the_stored_record(
    gateway: AwsResourceGateway, environment: SeededEnvironment, sandbox: SandboxAws
) -> None:
    found = await gateway.find_tagged(ENVIRONMENT_TAG, "pv-1")

    results = [await gateway.sleep(resource) for resource in found.resources]
    stored = [result.before.model_dump_json() for result in results if result.acted]

    assert len(stored) == 3
    [instance_id] = environment.instance_ids
    assert instance_state(sandbox, instance_id) == "stopped"
    assert db_state(sandbox, "pv-1-db") == "stopped"
    assert group_size(sandbox, "pv-1-workers") == GroupSize(
        min_size=0, max_size=0, desired_capacity=0
    )
    neighbour = await gateway.find_tagged(ENVIRONMENT_TAG, "pv-2")
    assert [r.state for r in neighbour.resources] != ["stopped"]

    woken = [await gateway.wake(AwsResource.model_validate_json(record)) for record in stored]

    assert instance_state(sandbox, instance_id) == "running"
    assert db_state(sandbox, "pv-1-db") == "available"
    assert group_size(sandbox, "pv-1-workers") == ORIGINAL
    assert {r.kind: r.state for r in woken}[
        ResourceKind.AUTO_SCALING_GROUP
    ] == GroupState.IN_SERVICE


async def test_sleeping_twice_acts_once(
    gateway: AwsResourceGateway, environment: SeededEnvironment
) -> None:
    found = await gateway.find_tagged(ENVIRONMENT_TAG, "pv-1")
    for resource in found.resources:
        await gateway.sleep(resource)

    again = [await gateway.sleep(resource) for resource in found.resources]

    assert [result.acted for result in again] == [False, False, False]
    group = next(r for r in again if r.before.kind is ResourceKind.AUTO_SCALING_GROUP)
    assert group.before.state == GroupState.SCALED_TO_ZERO


async def test_group_wakes_to_the_sizes_it_had_when_put_to_sleep(
    gateway: AwsResourceGateway, environment: SeededEnvironment, sandbox: SandboxAws
) -> None:
    found = await gateway.find_tagged(ENVIRONMENT_TAG, "pv-1")
    group = next(r for r in found.resources if r.kind is ResourceKind.AUTO_SCALING_GROUP)
    # Someone resizes the group after it was listed and before off-hours begins.
    sandbox.autoscaling.update_auto_scaling_group(
        AutoScalingGroupName=group.id, MinSize=2, MaxSize=6, DesiredCapacity=4
    )

    result: SleepResult = await gateway.sleep(group)
    await gateway.wake(result.before)

    resized = GroupSize(min_size=2, max_size=6, desired_capacity=4)
    assert result.before.size == resized
    assert group_size(sandbox, group.id) == resized


async def test_waking_a_running_database_changes_nothing(
    gateway: AwsResourceGateway, environment: SeededEnvironment, sandbox: SandboxAws
) -> None:
    woken = await gateway.start_db_instance("pv-1-db")

    assert woken.state == "available"
    assert db_state(sandbox, "pv-1-db") == "available"


async def test_unstoppable_databases_are_skipped_with_a_reason(
    gateway: AwsResourceGateway, moto_aws: MotoServer, sandbox: SandboxAws
) -> None:
    tags: list[TagTypeDef] = [{"Key": ENVIRONMENT_TAG, "Value": "ds-1"}]
    sandbox.rds.create_db_cluster(
        DBClusterIdentifier="ds-1-aurora",
        Engine="aurora-postgresql",
        MasterUsername="forgebot",
        MasterUserPassword="sandbox-only-password",
        Tags=tags,
    )
    sandbox.rds.create_db_instance(
        DBInstanceIdentifier="ds-1-aurora-1",
        DBInstanceClass="db.r6g.large",
        Engine="aurora-postgresql",
        DBClusterIdentifier="ds-1-aurora",
        Tags=tags,
    )

    found = await gateway.find_tagged(ENVIRONMENT_TAG, "ds-1")

    assert found.resources == ()
    [skipped] = found.skipped
    assert skipped.id == "ds-1-aurora-1"
    assert skipped.reason == "member of Aurora cluster ds-1-aurora; clusters are stopped as a whole"


async def test_wake_needs_recorded_sizes_for_a_group(gateway: AwsResourceGateway) -> None:
    unrecorded = AwsResource(
        kind=ResourceKind.AUTO_SCALING_GROUP, id="g", region=REGION, state="scaled-to-zero"
    )

    with pytest.raises(ValueError, match="no recorded sizes"):
        await gateway.wake(unrecorded)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("instance", "EC2: The instance ID 'i-0123456789abcdef0' does not exist"),
        ("database", "RDS: DBInstance pv-404-db not found."),
        ("group", "EC2 Auto Scaling: Auto Scaling group pv-404-workers does not exist"),
    ],
)
async def test_missing_resources_are_not_found(
    gateway: AwsResourceGateway, moto_aws: MotoServer, action: str, message: str
) -> None:
    with pytest.raises(AwsResourceNotFound) as raised:
        if action == "instance":
            await gateway.stop_instance("i-0123456789abcdef0")
        elif action == "database":
            await gateway.stop_db_instance("pv-404-db")
        else:
            await gateway.scale_group_to_zero("pv-404-workers")

    assert isinstance(raised.value, NotFound)
    assert str(raised.value) == message


def test_group_sizes_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="min <= desired <= max"):
        GroupSize(min_size=2, max_size=3, desired_capacity=1)
