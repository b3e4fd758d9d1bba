"""Off-hours on AWS: find an environment's EC2 instances, RDS DB instances and Auto Scaling
groups by tag, put them to sleep and wake them.

Left alone, with the reason reported: instances an Auto Scaling group manages (the group is
scaled instead; stopping them would only make it replace them), spot instances, Aurora
cluster members (clusters stop as a whole) and RDS read replicas and their sources (AWS
cannot stop either). RDS starts a stopped DB instance by itself after seven days, so a
sleep longer than that does not hold for databases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from integrations.aws.errors import AwsCall, AwsResourceBusy, AwsResourceNotFound
from integrations.aws.resource_types import (
    ZERO,
    AwsResource,
    GroupSize,
    GroupState,
    ResourceKind,
    SkippedResource,
    SleepResult,
    TaggedResources,
)
from integrations.aws.session import AwsClients

if TYPE_CHECKING:
    from mypy_boto3_autoscaling.type_defs import AutoScalingGroupTypeDef
    from mypy_boto3_ec2.type_defs import InstanceTypeDef
    from mypy_boto3_rds.type_defs import DBInstanceTypeDef

T = TypeVar("T")

DESCRIBE_INSTANCES = AwsCall("ec2", "DescribeInstances")
STOP_INSTANCES = AwsCall("ec2", "StopInstances")
START_INSTANCES = AwsCall("ec2", "StartInstances")
DESCRIBE_DB_INSTANCES = AwsCall("rds", "DescribeDBInstances")
STOP_DB_INSTANCE = AwsCall("rds", "StopDBInstance")
START_DB_INSTANCE = AwsCall("rds", "StartDBInstance")
DESCRIBE_GROUPS = AwsCall("autoscaling", "DescribeAutoScalingGroups")
UPDATE_GROUP = AwsCall("autoscaling", "UpdateAutoScalingGroup")

LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped"]
AUTO_SCALING_GROUP_TAG = "aws:autoscaling:groupName"
DB_ASLEEP = ("stopped", "stopping")
DB_AWAKE = ("available", "starting")


class ResourceControl(Protocol):
    """What the off-hours capability needs from a cloud."""

    async def find_tagged(self, key: str, value: str) -> TaggedResources: ...

    async def sleep(self, resource: AwsResource) -> SleepResult: ...

    async def wake(self, resource: AwsResource) -> AwsResource: ...


class AwsResourceGateway:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    @property
    def region(self) -> str:
        return self._clients.config.region

    async def find_tagged(self, key: str, value: str) -> TaggedResources:
        (
            (instances, skipped_instances),
            (databases, skipped_databases),
            groups,
        ) = await asyncio.gather(
            self._tagged_instances(key, value),
            self._tagged_databases(key, value),
            self._tagged_groups(key, value),
        )
        return TaggedResources(
            tag_key=key,
            tag_value=value,
            resources=(*instances, *databases, *groups),
            skipped=(*skipped_instances, *skipped_databases),
        )

    async def sleep(self, resource: AwsResource) -> SleepResult:
        """Stop an instance or database, or scale a group to zero. Record the result's
        `before` (not the resource passed in): it holds the sizes just before scaling."""
        match resource.kind:
            case ResourceKind.EC2_INSTANCE:
                return await self.stop_instance(resource.id, name=resource.name)
            case ResourceKind.RDS_INSTANCE:
                return await self.stop_db_instance(resource.id)
            case ResourceKind.AUTO_SCALING_GROUP:
                return await self.scale_group_to_zero(resource.id)

    async def wake(self, resource: AwsResource) -> AwsResource:
        """Start what `sleep` stopped; a group gets back exactly the recorded sizes."""
        match resource.kind:
            case ResourceKind.EC2_INSTANCE:
                return await self.start_instance(resource.id, name=resource.name)
            case ResourceKind.RDS_INSTANCE:
                return await self.start_db_instance(resource.id)
            case ResourceKind.AUTO_SCALING_GROUP:
                if resource.size is None:
                    raise ValueError(f"no recorded sizes to restore group {resource.id} to")
                return await self.restore_group(resource.id, resource.size)

    # EC2 instances

    async def stop_instance(self, instance_id: str, *, name: str | None = None) -> SleepResult:
        # StopInstances is idempotent and reports the state before, so no describe first.
        response = await self._run(
            STOP_INSTANCES, lambda: self._clients.ec2().stop_instances(InstanceIds=[instance_id])
        )
        change = _only(response["StoppingInstances"], instance_id)
        before = change["PreviousState"]["Name"]
        return SleepResult(
            before=self._instance(instance_id, before, name),
            state_after=change["CurrentState"]["Name"],
            acted=before in ("pending", "running"),
        )

    async def start_instance(self, instance_id: str, *, name: str | None = None) -> AwsResource:
        response = await self._run(
            START_INSTANCES, lambda: self._clients.ec2().start_instances(InstanceIds=[instance_id])
        )
        change = _only(response["StartingInstances"], instance_id)
        return self._instance(instance_id, change["CurrentState"]["Name"], name)

    # RDS DB instances

    async def stop_db_instance(self, db_instance_id: str) -> SleepResult:
        before = await self._describe_database(db_instance_id)
        if before.state in DB_ASLEEP:
            return SleepResult(before=before, state_after=before.state, acted=False)
        if before.state != "available":
            raise AwsResourceBusy(
                f"database {db_instance_id} is {before.state}; it can be stopped once available"
            )
        try:
            response = await self._run(
                STOP_DB_INSTANCE,
                lambda: self._clients.rds().stop_db_instance(DBInstanceIdentifier=db_instance_id),
            )
        except AwsResourceBusy:
            # Someone else stopped it between our look and our call: the goal is reached.
            now = await self._describe_database(db_instance_id)
            if now.state in DB_ASLEEP:
                return SleepResult(before=before, state_after=now.state, acted=False)
            raise
        return SleepResult(
            before=before, state_after=response["DBInstance"]["DBInstanceStatus"], acted=True
        )

    async def start_db_instance(self, db_instance_id: str) -> AwsResource:
        current = await self._describe_database(db_instance_id)
        if current.state in DB_AWAKE:
            return current
        if current.state != "stopped":
            raise AwsResourceBusy(
                f"database {db_instance_id} is {current.state}; it can be started once stopped"
            )
        try:
            response = await self._run(
                START_DB_INSTANCE,
                lambda: self._clients.rds().start_db_instance(DBInstanceIdentifier=db_instance_id),
            )
        except AwsResourceBusy:
            now = await self._describe_database(db_instance_id)
            if now.state in DB_AWAKE:
                return now
            raise
        return current.model_copy(update={"state": response["DBInstance"]["DBInstanceStatus"]})

    # Auto Scaling groups

    async def scale_group_to_zero(self, group_name: str) -> SleepResult:
        before = await self._describe_group(group_name)
        if before.size is not None and before.size.is_zero:
            return SleepResult(before=before, state_after=before.state, acted=False)
        await self._set_group_size(group_name, ZERO)
        return SleepResult(before=before, state_after=GroupState.SCALED_TO_ZERO, acted=True)

    async def restore_group(self, group_name: str, size: GroupSize) -> AwsResource:
        await self._set_group_size(group_name, size)
        return await self._describe_group(group_name)

    async def _set_group_size(self, group_name: str, size: GroupSize) -> None:
        # One call sets all three, so AWS never sees an inconsistent intermediate size.
        await self._run(
            UPDATE_GROUP,
            lambda: self._clients.autoscaling().update_auto_scaling_group(
                AutoScalingGroupName=group_name,
                MinSize=size.min_size,
                MaxSize=size.max_size,
                DesiredCapacity=size.desired_capacity,
            ),
        )

    # Lookups

    async def _tagged_instances(
        self, key: str, value: str
    ) -> tuple[list[AwsResource], list[SkippedResource]]:
        def describe() -> list[InstanceTypeDef]:
            paginator = self._clients.ec2().get_paginator("describe_instances")
            pages = paginator.paginate(
                Filters=[
                    {"Name": f"tag:{key}", "Values": [value]},
                    {"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES},
                ]
            )
            return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]

        found: list[AwsResource] = []
        skipped: list[SkippedResource] = []
        for instance in await self._run(DESCRIBE_INSTANCES, describe):
            instance_id = instance["InstanceId"]
            tags = _tags(instance.get("Tags", []))
            if AUTO_SCALING_GROUP_TAG in tags:
                skipped.append(
                    _skip(
                        ResourceKind.EC2_INSTANCE,
                        instance_id,
                        f"managed by Auto Scaling group {tags[AUTO_SCALING_GROUP_TAG]}, "
                        "which is scaled instead",
                    )
                )
            elif instance.get("InstanceLifecycle") == "spot":
                skipped.append(
                    _skip(ResourceKind.EC2_INSTANCE, instance_id, "spot instances are not stopped")
                )
            else:
                found.append(
                    self._instance(instance_id, instance["State"]["Name"], tags.get("Name"))
                )
        return found, skipped

    async def _tagged_databases(
        self, key: str, value: str
    ) -> tuple[list[AwsResource], list[SkippedResource]]:
        def describe() -> list[DBInstanceTypeDef]:
            # DescribeDBInstances cannot filter by tag; every instance carries its TagList.
            paginator = self._clients.rds().get_paginator("describe_db_instances")
            return [db for page in paginator.paginate() for db in page["DBInstances"]]

        found: list[AwsResource] = []
        skipped: list[SkippedResource] = []
        for db in await self._run(DESCRIBE_DB_INSTANCES, describe):
            if _tags(db.get("TagList", [])).get(key) != value:
                continue
            reason = _unstoppable_database(db)
            if reason is not None:
                skipped.append(_skip(ResourceKind.RDS_INSTANCE, db["DBInstanceIdentifier"], reason))
            else:
                found.append(self._database(db))
        return found, skipped

    async def _tagged_groups(self, key: str, value: str) -> list[AwsResource]:
        def describe() -> list[AutoScalingGroupTypeDef]:
            paginator = self._clients.autoscaling().get_paginator("describe_auto_scaling_groups")
            pages = paginator.paginate(Filters=[{"Name": f"tag:{key}", "Values": [value]}])
            return [group for page in pages for group in page["AutoScalingGroups"]]

        return [self._group(group) for group in await self._run(DESCRIBE_GROUPS, describe)]

    async def _describe_database(self, db_instance_id: str) -> AwsResource:
        response = await self._run(
            DESCRIBE_DB_INSTANCES,
            lambda: self._clients.rds().describe_db_instances(DBInstanceIdentifier=db_instance_id),
        )
        return self._database(response["DBInstances"][0])

    async def _describe_group(self, group_name: str) -> AwsResource:
        response = await self._run(
            DESCRIBE_GROUPS,
            lambda: self._clients.autoscaling().describe_auto_scaling_groups(
                AutoScalingGroupNames=[group_name]
            ),
        )
        groups = response["AutoScalingGroups"]
        if not groups:
            # DescribeAutoScalingGroups answers an unknown name with an empty list, not an error.
            raise AwsResourceNotFound(
                "EC2 Auto Scaling", "NotFound", f"Auto Scaling group {group_name} does not exist"
            )
        return self._group(groups[0])

    def _instance(self, instance_id: str, state: str, name: str | None) -> AwsResource:
        return AwsResource(
            kind=ResourceKind.EC2_INSTANCE,
            id=instance_id,
            region=self.region,
            state=state,
            name=name,
        )

    def _database(self, db: DBInstanceTypeDef) -> AwsResource:
        return AwsResource(
            kind=ResourceKind.RDS_INSTANCE,
            id=db["DBInstanceIdentifier"],
            region=self.region,
            state=db["DBInstanceStatus"],
            name=_tags(db.get("TagList", [])).get("Name"),
        )

    def _group(self, group: AutoScalingGroupTypeDef) -> AwsResource:
        size = GroupSize(
            min_size=group["MinSize"],
            max_size=group["MaxSize"],
            desired_capacity=group["DesiredCapacity"],
        )
        return AwsResource(
            kind=ResourceKind.AUTO_SCALING_GROUP,
            id=group["AutoScalingGroupName"],
            region=self.region,
            state=GroupState.SCALED_TO_ZERO if size.is_zero else GroupState.IN_SERVICE,
            name=_tags(group.get("Tags", [])).get("Name"),
            size=size,
        )

    async def _run(self, call: AwsCall, fn: Callable[[], T]) -> T:
        return await self._clients.run(call, fn)


def _unstoppable_database(db: DBInstanceTypeDef) -> str | None:
    cluster = db.get("DBClusterIdentifier")
    if cluster:
        return f"member of Aurora cluster {cluster}; clusters are stopped as a whole"
    if db.get("ReadReplicaSourceDBInstanceIdentifier"):
        return "read replicas cannot be stopped"
    if db.get("ReadReplicaDBInstanceIdentifiers"):
        return "a database with read replicas cannot be stopped"
    return None


def _tags(tags: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {str(tag["Key"]): str(tag.get("Value", "")) for tag in tags if "Key" in tag}


def _skip(kind: ResourceKind, resource_id: str, reason: str) -> SkippedResource:
    return SkippedResource(kind=kind, id=resource_id, reason=reason)


def _only(changes: Sequence[T], instance_id: str) -> T:
    if len(changes) != 1:
        raise AwsResourceNotFound("EC2", "NotFound", f"instance {instance_id} was not reported")
    return changes[0]
