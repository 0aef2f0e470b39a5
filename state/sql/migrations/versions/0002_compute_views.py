"""The Compute views: instances, instance actions and their events, compute nodes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("uid", sa.String(36), primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("resource_version", sa.BigInteger(), nullable=False),
        sa.Column("host", sa.String(253), nullable=True),
        sa.Column("flavor", sa.String(253), nullable=False),
        sa.Column("image", sa.String(253), nullable=False),
        sa.Column("vm_state", sa.String(32), nullable=False),
        sa.Column("task_state", sa.String(32), nullable=True),
        sa.Column("power_state", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("deleted_at", nullable=True),
    )
    op.create_index("ix_instances_project_created", "instances", ["project", "created_at"])
    op.create_index("ix_instances_host", "instances", ["host"])
    op.create_index("ix_instances_project_name", "instances", ["project", "name"])
    op.create_table(
        "instance_actions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("instance_uid", sa.String(36), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        _time("start_time"),
        _time("finish_time", nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.UniqueConstraint("request_id", name="uq_instance_actions_request"),
    )
    op.create_index(
        "ix_instance_actions_instance", "instance_actions", ["instance_uid", "start_time"]
    )
    op.create_table(
        "instance_action_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "action_id",
            sa.Integer(),
            sa.ForeignKey("instance_actions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event", sa.String(64), nullable=False),
        _time("start_time"),
        _time("finish_time", nullable=True),
        sa.Column("result", sa.String(16), nullable=True),
        sa.Column("host", sa.String(253), nullable=True),
    )
    op.create_index("ix_instance_action_events_action", "instance_action_events", ["action_id"])
    op.create_table(
        "compute_nodes",
        sa.Column("host", sa.String(253), primary_key=True),
        sa.Column("zone", sa.String(255), nullable=False),
        sa.Column("virt_type", sa.String(16), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("ram_mib", sa.BigInteger(), nullable=False),
        sa.Column("disk_gib", sa.BigInteger(), nullable=False),
        sa.Column("vcpus_used", sa.Integer(), nullable=False),
        sa.Column("ram_mib_used", sa.BigInteger(), nullable=False),
        sa.Column("disk_gib_used", sa.BigInteger(), nullable=False),
        sa.Column("running_vms", sa.Integer(), nullable=False),
        sa.Column("alive", sa.Boolean(), nullable=False),
        _time("updated_at"),
    )


def downgrade() -> None:
    op.drop_table("compute_nodes")
    op.drop_table("instance_action_events")
    op.drop_table("instance_actions")
    op.drop_table("instances")
