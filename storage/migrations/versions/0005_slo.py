"""slo alert episodes

Revision ID: 0005_slo
Revises: 0004_deploy_approvals
Create Date: 2026-11-24 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0005_slo"
down_revision: str | Sequence[str] | None = "0004_deploy_approvals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "slo_alert_episodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slo_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("service", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("environment", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("condition", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("started_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("message_ts", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("open_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_key"),
    )
    with op.batch_alter_table("slo_alert_episodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slo_alert_episodes_slo_key"), ["slo_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slo_alert_episodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slo_alert_episodes_slo_key"))
    op.drop_table("slo_alert_episodes")
