"""The migrations the conductor recorded (resizes, in place on their host), for os-migrations.

Owns: reading ``migrations`` with Nova's filters (host, status, instance,
migration type, source compute) joined with the flavors' row ids (Nova's
instance type ids) and the host's address (``dest_host``), newest first.

Must never: write (the conductor does).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, aliased

from state.sql.models import ComputeNode, MigrationRow, Resource


@dataclass(frozen=True)
class MigrationQuery:
    #: either end on this host
    host: str | None = None
    status: str | None = None
    instance_uid: str | None = None
    migration_type: str | None = None
    source_compute: str | None = None


@dataclass(frozen=True)
class Migration:
    id: int
    uuid: str
    instance_uid: str
    project: str
    migration_type: str
    status: str
    source_compute: str | None
    dest_compute: str | None
    dest_host: str | None
    #: the flavors' row ids (0 when gone)
    old_flavor_id: int
    new_flavor_id: int
    created_at: dt.datetime
    updated_at: dt.datetime


def migrations(session: Session, q: MigrationQuery) -> list[Migration]:
    old, new = aliased(Resource), aliased(Resource)

    def flavor(alias: Any, column: Any) -> ColumnElement[bool]:
        return and_(alias.kind == "Flavor", alias.name == column, alias.deleted_at.is_(None))

    stmt = (
        select(MigrationRow, old.id, new.id, ComputeNode.host_ip)
        .outerjoin(old, flavor(old, MigrationRow.old_flavor))
        .outerjoin(new, flavor(new, MigrationRow.new_flavor))
        .outerjoin(ComputeNode, ComputeNode.host == MigrationRow.dest_compute)
        .order_by(MigrationRow.created_at.desc(), MigrationRow.id.desc())
    )
    if q.host is not None:
        stmt = stmt.where(
            or_(MigrationRow.source_compute == q.host, MigrationRow.dest_compute == q.host)
        )
    for column, value in (
        (MigrationRow.status, q.status),
        (MigrationRow.instance_uid, q.instance_uid),
        (MigrationRow.migration_type, q.migration_type),
        (MigrationRow.source_compute, q.source_compute),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return [
        Migration(
            id=m.id,
            uuid=m.uuid,
            instance_uid=m.instance_uid,
            project=m.project,
            migration_type=m.migration_type,
            status=m.status,
            source_compute=m.source_compute,
            dest_compute=m.dest_compute,
            dest_host=host_ip,
            old_flavor_id=old_id or 0,
            new_flavor_id=new_id or 0,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )
        for m, old_id, new_id, host_ip in session.execute(stmt)
    ]
