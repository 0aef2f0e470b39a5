"""Usage of servers over a period from the conductor's SQL (os-simple-tenant-usage).

Owns: the servers that ran during a period (launched before its end, not
deleted before its start), each with its flavor's size and the hours it ran
within the period, computed as Nova does.

Must never: write.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from state.sql.models import InstanceRow, Resource


@dataclass(frozen=True)
class ServerUsage:
    uid: str
    project: str
    name: str
    flavor: str
    vcpus: int
    memory_mb: int
    local_gb: int
    vm_state: str
    launched_at: dt.datetime
    ended_at: dt.datetime | None
    hours: float


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


def server_usages(
    session: Session, start: dt.datetime, stop: dt.datetime, project: str | None = None
) -> list[ServerUsage]:
    """The servers (of ``project``, or all) that ran between ``start`` and ``stop``."""
    stmt = select(InstanceRow).where(
        InstanceRow.launched_at.is_not(None),
        InstanceRow.launched_at <= stop,
        or_(InstanceRow.deleted_at.is_(None), InstanceRow.deleted_at >= start),
    )
    if project is not None:
        stmt = stmt.where(InstanceRow.project == project)
    rows = list(session.scalars(stmt.order_by(InstanceRow.created_at, InstanceRow.uid)))
    # a flavor's size, from its live object or else its last one
    flavors: dict[str, dict] = {}
    for name, spec, deleted in session.execute(
        select(Resource.name, Resource.spec, Resource.deleted_at)
        .where(Resource.kind == "Flavor", Resource.name.in_({r.flavor for r in rows}))
        .order_by(Resource.id)
    ):
        if deleted is None or name not in flavors:
            flavors[name] = spec
    out = []
    for r in rows:
        assert r.launched_at is not None
        launched, ended = _utc(r.launched_at), _utc(r.deleted_at) if r.deleted_at else None
        begin, end = max(launched, start), min(stop, ended) if ended else stop
        size = flavors.get(r.flavor, {})
        out.append(
            ServerUsage(
                uid=r.uid,
                project=r.project,
                name=r.name,
                flavor=r.flavor,
                vcpus=int(size.get("vcpus", 0)),
                memory_mb=int(size.get("ramMiB", 0)),
                local_gb=int(size.get("diskGiB", 0)),
                vm_state=r.vm_state,
                launched_at=launched,
                ended_at=ended,
                hours=max(0.0, (end - begin).total_seconds() / 3600.0),
            )
        )
    return out
