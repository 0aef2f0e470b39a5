"""SQL models, as the alembic revisions make them.

Owns: ``resources`` (every object of every kind, as the conductor projects
it from etcd), ``events`` and ``watch_progress`` (the last etcd revision a
projector applied, so readers can wait for their own writes); the Compute
views: ``instances`` (Nova's states as columns), ``instance_actions`` and
``instance_action_events`` (os-instance-actions), ``compute_nodes``
(os-hypervisors).

Must never: change without a matching alembic revision (a test compares
them).

Cluster-scoped objects have ``project = ''`` (not NULL), so that the unique
constraint on (kind, project, name, uid) and the lookups behave the same on
SQLite and PostgreSQL. A deleted object keeps its row with ``deleted_at``
set; its uid differs from any later object of the same name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class Resource(Base):
    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("uid", name="uq_resources_uid"),
        Index("ix_resources_kind_project_name", "kind", "project", "name"),
        Index("ix_resources_kind_created", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(36), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    project: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    name: Mapped[str] = mapped_column(String(253), nullable=False)
    resource_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    #: the object's whole metadata (annotations, finalizers, deletionTimestamp, ...)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, server_default="{}")
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    status: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_object_uid", "object_uid"),
        Index("ix_events_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_uid: Mapped[str] = mapped_column(String(36), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    project: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    name: Mapped[str] = mapped_column(String(253), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(String(128), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class WatchProgress(Base):
    __tablename__ = "watch_progress"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False)


class InstanceRow(Base):
    """The Compute API's list view of an Instance: Nova's states as columns, for filters,
    sorting and paging."""

    __tablename__ = "instances"
    __table_args__ = (
        Index("ix_instances_project_created", "project", "created_at"),
        Index("ix_instances_host", "host"),
        Index("ix_instances_project_name", "project", "name"),
        Index("ix_instances_created", "created_at", "uid"),
        Index("ix_instances_updated", "updated_at"),
        Index("ix_instances_reservation", "reservation_id"),
    )

    uid: Mapped[str] = mapped_column(String(36), primary_key=True)
    project: Mapped[str] = mapped_column(String(64), nullable=False)
    #: the name users see (``spec.displayName``, else the object's name)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    resource_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    host: Mapped[str | None] = mapped_column(String(253), nullable=True)
    flavor: Mapped[str] = mapped_column(String(253), nullable=False)
    image: Mapped[str] = mapped_column(String(253), nullable=False)
    vm_state: Mapped[str] = mapped_column(String(32), nullable=False)
    task_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: when it first ran (hostd's ``status.launchedAt``)
    launched_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: its tags as ",a,b," (tags hold no commas), for "contains" filters
    tags: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the create request it came from (Nova's reservation id)
    reservation_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: its ports' fixed addresses, one per line (the network reconciler's status.ports)
    addresses: Mapped[str | None] = mapped_column(Text, nullable=True)


class InstanceAction(Base):
    """One user action on an instance (os-instance-actions): when it was asked, when it ended."""

    __tablename__ = "instance_actions"
    __table_args__ = (
        UniqueConstraint("request_id", name="uq_instance_actions_request"),
        Index("ix_instance_actions_instance", "instance_uid", "start_time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uid: Mapped[str] = mapped_column(String(36), nullable=False)
    project: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    #: the instance's generation that asked for it
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    start_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)


class MigrationRow(Base):
    """One move of an instance (os-migrations): a resize here, in place on its host."""

    __tablename__ = "migrations"
    __table_args__ = (
        UniqueConstraint("action_id", name="uq_migrations_action"),
        Index("ix_migrations_instance", "instance_uid", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    instance_uid: Mapped[str] = mapped_column(String(36), nullable=False)
    project: Mapped[str] = mapped_column(String(64), nullable=False)
    #: the resize action it is
    action_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("instance_actions.id", ondelete="CASCADE"), nullable=False
    )
    migration_type: Mapped[str] = mapped_column(String(32), nullable=False)
    #: Nova's: migrating, finished, confirming, confirmed, reverting, reverted, error
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    source_compute: Mapped[str | None] = mapped_column(String(253), nullable=True)
    dest_compute: Mapped[str | None] = mapped_column(String(253), nullable=True)
    #: the flavors' object names
    old_flavor: Mapped[str] = mapped_column(String(253), nullable=False)
    new_flavor: Mapped[str] = mapped_column(String(253), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class InstanceActionEvent(Base):
    __tablename__ = "instance_action_events"
    __table_args__ = (Index("ix_instance_action_events_action", "action_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("instance_actions.id", ondelete="CASCADE"), nullable=False
    )
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    start_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: "Success" or "Error" once finished
    result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    host: Mapped[str | None] = mapped_column(String(253), nullable=True)


class ComputeNode(Base):
    """A host's capacity and what is allocated on it (os-hypervisors)."""

    __tablename__ = "compute_nodes"

    host: Mapped[str] = mapped_column(String(253), primary_key=True)
    zone: Mapped[str] = mapped_column(String(255), nullable=False)
    virt_type: Mapped[str] = mapped_column(String(16), nullable=False)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    ram_mib: Mapped[int] = mapped_column(BigInteger, nullable=False)
    disk_gib: Mapped[int] = mapped_column(BigInteger, nullable=False)
    vcpus_used: Mapped[int] = mapped_column(Integer, nullable=False)
    ram_mib_used: Mapped[int] = mapped_column(BigInteger, nullable=False)
    disk_gib_used: Mapped[int] = mapped_column(BigInteger, nullable=False)
    running_vms: Mapped[int] = mapped_column(Integer, nullable=False)
    alive: Mapped[bool] = mapped_column(Boolean, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    hypervisor_type: Mapped[str] = mapped_column(String(32), nullable=False, server_default="")
    hypervisor_version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    #: Nova's cpu_info: a JSON document as text
    cpu_info: Mapped[str] = mapped_column(Text, nullable=False, server_default="{}")
    host_ip: Mapped[str] = mapped_column(String(64), nullable=False, server_default="")
