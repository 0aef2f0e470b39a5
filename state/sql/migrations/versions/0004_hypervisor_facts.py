"""Hypervisor facts on compute nodes (os-hypervisors): type, version, CPU, address.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("compute_nodes") as batch:
        batch.add_column(
            sa.Column("hypervisor_type", sa.String(32), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("hypervisor_version", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("cpu_info", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("host_ip", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("compute_nodes") as batch:
        for column in ("host_ip", "cpu_info", "hypervisor_version", "hypervisor_type"):
            batch.drop_column(column)
