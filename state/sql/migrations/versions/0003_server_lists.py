"""Server lists from SQL: whole object metadata on resources; instance columns for Nova's
filters and sort keys (user, key pair, availability zone), and indexes for all-projects
listings and changes-since.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    op.add_column(
        "resources", sa.Column("meta", json_type, nullable=False, server_default=sa.text("'{}'"))
    )
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("user_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("key_name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("availability_zone", sa.String(255), nullable=True))
    op.create_index("ix_instances_created", "instances", ["created_at", "uid"])
    op.create_index("ix_instances_updated", "instances", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_instances_updated", "instances")
    op.drop_index("ix_instances_created", "instances")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("availability_zone")
        batch.drop_column("key_name")
        batch.drop_column("user_id")
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("meta")
