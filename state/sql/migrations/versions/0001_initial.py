"""The first schema: resources, events, watch_progress.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("resource_version", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("status", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("uid", name="uq_resources_uid"),
    )
    op.create_index("ix_resources_kind_project_name", "resources", ["kind", "project", "name"])
    op.create_index("ix_resources_kind_created", "resources", ["kind", "created_at"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("object_uid", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_events_object_uid", "events", ["object_uid"])
    op.create_index("ix_events_created", "events", ["created_at"])
    op.create_table(
        "watch_progress",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("watch_progress")
    op.drop_index("ix_events_created", "events")
    op.drop_index("ix_events_object_uid", "events")
    op.drop_table("events")
    op.drop_index("ix_resources_kind_created", "resources")
    op.drop_index("ix_resources_kind_project_name", "resources")
    op.drop_table("resources")
