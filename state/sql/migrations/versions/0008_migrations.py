"""Migrations (Nova's os-migrations): one row per resize, with its status.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("instance_uid", sa.String(36), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column(
            "action_id",
            sa.Integer(),
            sa.ForeignKey("instance_actions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("migration_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("source_compute", sa.String(253), nullable=True),
        sa.Column("dest_compute", sa.String(253), nullable=True),
        sa.Column("old_flavor", sa.String(253), nullable=False),
        sa.Column("new_flavor", sa.String(253), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("action_id", name="uq_migrations_action"),
    )
    op.create_index("ix_migrations_instance", "migrations", ["instance_uid", "id"])


def downgrade() -> None:
    op.drop_index("ix_migrations_instance", table_name="migrations")
    op.drop_table("migrations")
