"""Typed descriptions of the AWS resources off-hours puts to sleep, JSON-round-trippable so the
off-hours service can store them before acting and wake from the stored copy."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The tag that ties AWS resources to a forgebot environment.
ENVIRONMENT_TAG = "forgebot:environment"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ResourceKind(StrEnum):
    EC2_INSTANCE = "ec2-instance"
    RDS_INSTANCE = "rds-instance"
    AUTO_SCALING_GROUP = "auto-scaling-group"


class GroupState(StrEnum):
    IN_SERVICE = "in-service"
    SCALED_TO_ZERO = "scaled-to-zero"


class GroupSize(_Frozen):
    min_size: int = Field(ge=0)
    max_size: int = Field(ge=0)
    desired_capacity: int = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> GroupSize:
        if not self.min_size <= self.desired_capacity <= self.max_size:
            raise ValueError(
                f"an Auto Scaling group needs min <= desired <= max, got "
                f"{self.min_size} <= {self.desired_capacity} <= {self.max_size}"
            )
        return self

    @property
    def is_zero(self) -> bool:
        return self.max_size == 0


ZERO = GroupSize(min_size=0, max_size=0, desired_capacity=0)


class AwsResource(_Frozen):
    kind: ResourceKind
    id: str
    """Instance ID, DB instance identifier or Auto Scaling group name."""
    region: str
    state: str
    """EC2 instance state, RDS DB instance status, or a `GroupState` for groups."""
    name: str | None = None
    size: GroupSize | None = None
    """Groups only: the sizes the group works at, which waking it restores exactly."""


class SkippedResource(_Frozen):
    """A tagged resource off-hours leaves alone, and why (shown to the environment's owner)."""

    kind: ResourceKind
    id: str
    reason: str


class TaggedResources(_Frozen):
    tag_key: str
    tag_value: str
    resources: tuple[AwsResource, ...] = ()
    skipped: tuple[SkippedResource, ...] = ()


class SleepResult(_Frozen):
    before: AwsResource
    """The resource just before it was put to sleep: the record to wake it from."""
    state_after: str
    acted: bool
    """False when it was already asleep: then waking it later would change what its owner
    chose, so the off-hours service should not record it."""
