"""Compute hosts from the conductor's SQL: their nodes (capacity, usage, facts) joined
with their Host objects (enabled, reason, forced down), the servers on one, and the
objects of a kind with their row ids (aggregates).

Owns: the rows os-hypervisors, os-services and os-aggregates show, each with
a stable integer id (the object's row id in ``resources``).

Must never: write.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from state.sql.models import ComputeNode, InstanceRow, Resource


@dataclass(frozen=True)
class HostRow:
    id: int
    node: ComputeNode
    #: the Host object's spec
    spec: dict[str, Any]
    #: its servers with a task in progress (Nova's current_workload)
    busy: int

    @property
    def enabled(self) -> bool:
        return bool(self.spec.get("enabled", True))

    @property
    def up(self) -> bool:
        return self.node.alive and not self.spec.get("forcedDown", False)

    @property
    def updated_at(self) -> dt.datetime:
        return self.node.updated_at


def hosts(session: Session, name: str | None = None) -> list[HostRow]:
    """Every compute host in name order, or the one named."""
    busy = (
        select(func.count())
        .where(
            InstanceRow.host == ComputeNode.host,
            InstanceRow.task_state.is_not(None),
            InstanceRow.deleted_at.is_(None),
        )
        .correlate(ComputeNode)
        .scalar_subquery()
    )
    stmt = (
        select(ComputeNode, Resource.id, Resource.spec, busy)
        .join(
            Resource,
            and_(
                Resource.kind == "Host",
                Resource.name == ComputeNode.host,
                Resource.deleted_at.is_(None),
            ),
        )
        .order_by(ComputeNode.host)
    )
    if name is not None:
        stmt = stmt.where(ComputeNode.host == name)
    return [HostRow(rid, node, spec or {}, int(n)) for node, rid, spec, n in session.execute(stmt)]


def servers_on(session: Session, host: str) -> list[tuple[str, str]]:
    """(uid, name) of the live servers placed on ``host``."""
    rows = session.execute(
        select(InstanceRow.uid, InstanceRow.name)
        .where(InstanceRow.host == host, InstanceRow.deleted_at.is_(None))
        .order_by(InstanceRow.created_at, InstanceRow.uid)
    )
    return [(uid, name) for uid, name in rows]


@dataclass(frozen=True)
class ObjectRow:
    id: int
    name: str
    uid: str
    spec: dict[str, Any]
    generation: int
    created_at: dt.datetime
    updated_at: dt.datetime


def objects_of(session: Session, kind: str) -> list[ObjectRow]:
    """The live cluster-scoped objects of ``kind`` in row id order."""
    rows = session.execute(
        select(
            Resource.id,
            Resource.name,
            Resource.uid,
            Resource.spec,
            Resource.generation,
            Resource.created_at,
            Resource.updated_at,
        )
        .where(Resource.kind == kind, Resource.deleted_at.is_(None))
        .order_by(Resource.id)
    )
    return [ObjectRow(*row) for row in rows]
