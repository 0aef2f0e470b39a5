"""Server names are display names (Nova's: up to 255 characters).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.alter_column("name", type_=sa.String(255), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.alter_column("name", type_=sa.String(253), existing_nullable=False)
