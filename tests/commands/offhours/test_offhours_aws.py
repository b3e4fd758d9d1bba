"""Off-hours with AWS: the environment's tagged EC2 instances, RDS instances and Auto Scaling
groups sleep and wake with its namespace, on moto, read back through boto3."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from integrations.aws.resource_types import GroupSize
from integrations.aws.resources import AwsResourceGateway
from integrations.aws.session import AwsClients
from integrations.sandbox.aws_seed import SandboxAws, sandbox_aws, seed_environment_resources
from storage.offhours import OffhoursOriginal
from tests.commands.offhours.conftest import ENV, Harness, replicas
from tests.fixtures.aws import REGION, MotoServer

SHUTDOWN = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
WAKE = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
ORIGINAL = GroupSize(min_size=1, max_size=3, desired_capacity=2)


def instance_state(aws: SandboxAws, instance_id: str) -> str:
    found = aws.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return found[0]["Instances"][0]["State"]["Name"]


def db_state(aws: SandboxAws, db_id: str) -> str:
    found = aws.rds.describe_db_instances(DBInstanceIdentifier=db_id)["DBInstances"]
    return found[0]["DBInstanceStatus"]


def group_size(aws: SandboxAws, name: str) -> GroupSize:
    group = aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ][0]
    return GroupSize(
        min_size=group["MinSize"],
        max_size=group["MaxSize"],
        desired_capacity=group["DesiredCapacity"],
    )


async def test_tagged_aws_resources_sleep_and_wake_exactly(
    h: Harness, moto_aws: MotoServer, moto_clients: AwsClients
) -> None:
    seeded = seed_environment_resources(moto_aws.url, ENV, group_size=ORIGINAL)
    neighbour = seed_environment_resources(
        moto_aws.url, "pv-neighbour", database=False, group_size=None
    )
    aws = sandbox_aws(moto_aws.url, REGION)
    h.service.aws = AwsResourceGateway(moto_clients)
    await h.add_environment()

    h.at(SHUTDOWN)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "slept" and not outcome.failures
    [instance] = seeded.instance_ids
    [database] = seeded.db_instance_ids
    [group] = seeded.group_names
    assert instance_state(aws, instance) == "stopped"
    assert db_state(aws, database) == "stopped"
    assert group_size(aws, group) == GroupSize(min_size=0, max_size=0, desired_capacity=0)
    assert instance_state(aws, neighbour.instance_ids[0]) == "running", "another environment's"
    assert replicas(h.kube)["web"] == 0

    h.at(SHUTDOWN + timedelta(minutes=5))
    [outcome] = await h.service.reconcile()
    assert not outcome.failures
    assert h.runtime.db is not None
    rows = await h.runtime.db.run(lambda s: s.exec(select(OffhoursOriginal)).all())  # type: ignore[arg-type]
    groups = [r for r in rows if r.kind == "auto-scaling-group"]
    assert len(groups) == 1, "a repeated shutdown records nothing new"
    assert groups[0].original["size"] == ORIGINAL.model_dump()

    h.at(WAKE)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "woke" and not outcome.failures
    assert instance_state(aws, instance) in ("pending", "running")
    assert db_state(aws, database) in ("starting", "available")
    assert group_size(aws, group) == ORIGINAL


async def test_an_instance_stopped_by_its_owner_stays_stopped(
    h: Harness, moto_aws: MotoServer, moto_clients: AwsClients
) -> None:
    seeded = seed_environment_resources(moto_aws.url, ENV, database=False, group_size=None)
    aws = sandbox_aws(moto_aws.url, REGION)
    [instance] = seeded.instance_ids
    aws.ec2.stop_instances(InstanceIds=[instance])
    h.service.aws = AwsResourceGateway(moto_clients)
    await h.add_environment()
    h.at(SHUTDOWN)
    await h.service.reconcile()
    h.at(SHUTDOWN + timedelta(minutes=5))
    await h.service.reconcile()
    assert h.runtime.db is not None
    rows = await h.runtime.db.run(lambda s: s.exec(select(OffhoursOriginal)).all())  # type: ignore[arg-type]
    assert [r for r in rows if r.kind == "ec2-instance"] == [], "nothing of its to restore"
    h.at(WAKE)
    [outcome] = await h.service.reconcile()
    assert outcome.acted == "woke"
    assert instance_state(aws, instance) == "stopped"
