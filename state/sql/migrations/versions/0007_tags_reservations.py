"""Server tags and reservation ids, for the Compute API's list filters.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("tags", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reservation_id", sa.String(32), nullable=True))
        batch.create_index("ix_instances_reservation", ["reservation_id"])


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_index("ix_instances_reservation")
        batch.drop_column("reservation_id")
        batch.drop_column("tags")
