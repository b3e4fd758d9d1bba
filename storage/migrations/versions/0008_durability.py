"""durability: operation owner, lease and deadline

Revision ID: 0008_durability
Revises: 0007_offhours
Create Date: 2026-12-01 11:45:00.000000

Every column is nullable: rows written by an older version carry no owner and no lease, and
recovery treats them as expired (claimable), which is what the old start-up recovery did.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0008_durability'
down_revision: str | Sequence[str] | None = '0007_offhours'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('operations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(
            sa.Column('lease_expires_at', storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column('deadline_at', storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index('ix_operations_state_lease', ['state', 'lease_expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('operations', schema=None) as batch_op:
        batch_op.drop_index('ix_operations_state_lease')
        batch_op.drop_column('deadline_at')
        batch_op.drop_column('lease_expires_at')
        batch_op.drop_column('owner')
