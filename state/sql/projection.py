"""The projection of etcd's objects into SQL, as the conductor writes it and the views read it.

Owns: upserting an object's row by uid (one statement, never moving a row
back to an older resourceVersion), marking rows deleted, the progress
revision (``watch_progress``) readers wait on for their own writes, and the
listing queries of the views. For Instances also their Compute view row,
the actions each change stands for (recorded once, by a deterministic
request id) and their end; and the compute nodes' rows.

Must never: be the source of truth: rows only follow etcd.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from state.instance_actions import EVENTS, actions_between, outcome, request_id
from state.instance_states import nova_state
from state.sql.engine import make_engine, make_sessionmaker, session_scope
from state.sql.models import (
    ComputeNode,
    InstanceAction,
    InstanceActionEvent,
    InstanceRow,
    Resource,
    WatchProgress,
)


def _time(stamp: str | None) -> dt.datetime:
    if not stamp:
        return dt.datetime.now(dt.UTC)
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _insert(engine: Engine) -> Any:
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def upsert_resource(session: Session, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    now = dt.datetime.now(dt.UTC)
    values = {
        "uid": meta["uid"],
        "kind": obj["kind"],
        "project": meta.get("project") or "",
        "name": meta["name"],
        "resource_version": int(meta["resourceVersion"]),
        "generation": int(meta.get("generation", 1)),
        "labels": meta.get("labels") or {},
        "spec": obj.get("spec") or {},
        "status": obj.get("status") or {},
        "created_at": _time(meta.get("creationTimestamp")),
        "updated_at": now,
        "deleted_at": None,
    }
    bind = session.get_bind()
    assert isinstance(bind, Engine) or hasattr(bind, "dialect")
    stmt = _insert(bind)(Resource).values(**values)  # type: ignore[arg-type]
    changing = {
        k: stmt.excluded[k]
        for k in (
            "resource_version",
            "generation",
            "labels",
            "spec",
            "status",
            "updated_at",
            "deleted_at",
        )
    }
    stmt = stmt.on_conflict_do_update(
        index_elements=["uid"],
        set_=changing,
        where=Resource.resource_version < stmt.excluded.resource_version,
    )
    session.execute(stmt)


def upsert_instance(session: Session, obj: dict[str, Any]) -> None:
    meta, spec, status = obj["metadata"], obj.get("spec", {}), obj.get("status", {})
    nova = nova_state(obj)
    values = {
        "uid": meta["uid"],
        "project": meta.get("project") or "",
        "name": meta["name"],
        "resource_version": int(meta["resourceVersion"]),
        "host": status.get("host"),
        "flavor": spec.get("flavor", ""),
        "image": spec.get("image", ""),
        "vm_state": nova["vmState"],
        "task_state": nova["taskState"],
        "power_state": nova["powerState"],
        "status": nova["novaStatus"],
        "created_at": _time(meta.get("creationTimestamp")),
        "updated_at": dt.datetime.now(dt.UTC),
        "deleted_at": None,
    }
    stmt = _insert(session.get_bind())(InstanceRow).values(**values)  # type: ignore[arg-type]
    stmt = stmt.on_conflict_do_update(
        index_elements=["uid"],
        set_={k: stmt.excluded[k] for k in values if k not in ("uid", "created_at")},
        where=InstanceRow.resource_version < stmt.excluded.resource_version,
    )
    session.execute(stmt)


def record_actions(session: Session, changes: Iterable[dict[str, Any]]) -> None:
    """Records the actions that the Instance changes (in etcd order) stand for."""
    last: dict[str, dict[str, Any] | None] = {}
    for obj in changes:
        meta = obj["metadata"]
        uid = meta["uid"]
        if uid not in last:
            row = session.scalar(select(Resource).where(Resource.uid == uid))
            last[uid] = (
                {"metadata": {"generation": row.generation}, "spec": row.spec}
                if row is not None
                else None
            )
        old = last[uid]
        generation = int(meta.get("generation", 1))
        replay = old is not None and old["metadata"]["generation"] > generation
        if not replay:
            for action in actions_between(old, obj):
                _add_action(session, obj, action)
            last[uid] = obj


def _add_action(session: Session, obj: dict[str, Any], action: str) -> None:
    meta = obj["metadata"]
    generation = int(meta.get("generation", 1))
    now = dt.datetime.now(dt.UTC)
    stmt = (
        _insert(session.get_bind())(InstanceAction)  # type: ignore[arg-type]
        .values(
            instance_uid=meta["uid"],
            project=meta.get("project") or "",
            action=action,
            generation=generation,
            request_id=request_id(meta["uid"], generation, action),
            start_time=now,
        )
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(InstanceAction.id)
    )
    action_id = session.scalar(stmt)
    if action_id is not None:
        session.add(
            InstanceActionEvent(
                action_id=action_id,
                event=EVENTS[action],
                start_time=now,
                host=(obj.get("status") or {}).get("host"),
            )
        )


def finish_actions(session: Session, uid: str, obj: dict[str, Any] | None) -> None:
    """Ends the instance's open actions that ``obj`` (None: the instance is gone) shows done."""
    open_actions = session.scalars(
        select(InstanceAction).where(
            InstanceAction.instance_uid == uid, InstanceAction.finish_time.is_(None)
        )
    )
    now = dt.datetime.now(dt.UTC)
    for action in open_actions:
        result = outcome(action.action, action.generation, obj)
        if result is None:
            continue
        action.finish_time = now
        if result == "Error":
            action.message = ((obj or {}).get("status", {}).get("fault") or {}).get("message")
        for event in session.scalars(
            select(InstanceActionEvent).where(InstanceActionEvent.action_id == action.id)
        ):
            event.finish_time, event.result = now, result
            event.host = event.host or (obj or {}).get("status", {}).get("host")


def upsert_compute_nodes(session: Session, nodes: list[dict[str, Any]]) -> None:
    """One row per host: capacity, what is allocated, liveness (each dict has every column
    but updated_at)."""
    if not nodes:
        return
    now = dt.datetime.now(dt.UTC)
    stmt = _insert(session.get_bind())(ComputeNode).values(  # type: ignore[arg-type]
        [{**n, "updated_at": now} for n in nodes]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["host"],
        set_={k: stmt.excluded[k] for k in (*nodes[0], "updated_at") if k != "host"},
    )
    session.execute(stmt)


def mark_deleted(session: Session, uids: Iterable[str]) -> None:
    uids = list(uids)
    if uids:
        now = dt.datetime.now(dt.UTC)
        session.execute(
            update(Resource)
            .where(Resource.uid.in_(uids), Resource.deleted_at.is_(None))
            .values(deleted_at=now)
        )
        session.execute(
            update(InstanceRow)
            .where(InstanceRow.uid.in_(uids), InstanceRow.deleted_at.is_(None))
            .values(deleted_at=now)
        )
        for uid in uids:
            finish_actions(session, uid, None)


def live_uids(session: Session) -> set[str]:
    return set(session.scalars(select(Resource.uid).where(Resource.deleted_at.is_(None))))


def record_progress(session: Session, name: str, revision: int) -> None:
    row = session.get(WatchProgress, name)
    if row is None:
        session.add(WatchProgress(name=name, revision=revision))
    elif revision > row.revision:
        row.revision = revision


def progress(session: Session, name: str) -> int:
    row = session.get(WatchProgress, name)
    return row.revision if row is not None else 0


class Projection:
    """A projector's handle on one database: batches of changes in single transactions."""

    def __init__(self, url: str, name: str = "conductor") -> None:
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self.name = name

    def apply(
        self,
        upserts: list[dict[str, Any]],
        deletes: list[str],
        revision: int,
        instance_changes: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Applies one batch and records that SQL now reflects etcd up to ``revision``.

        ``instance_changes``: every Instance the batch saw, in etcd order (``upserts``
        holds only the last of each), for the actions they stand for."""
        with session_scope(self.sessions) as s:
            record_actions(s, instance_changes)
            self._upsert(s, upserts)
            mark_deleted(s, deletes)
            record_progress(s, self.name, revision)

    def sync(self, present: list[dict[str, Any]], revision: int) -> None:
        """After a full list: upserts everything present and marks every other row deleted."""
        with session_scope(self.sessions) as s:
            record_actions(s, [o for o in present if o["kind"] == "Instance"])
            self._upsert(s, present)
            seen = {obj["metadata"]["uid"] for obj in present}
            mark_deleted(s, live_uids(s) - seen)
            record_progress(s, self.name, revision)

    @staticmethod
    def _upsert(s: Session, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            upsert_resource(s, obj)
            if obj["kind"] == "Instance":
                upsert_instance(s, obj)
                finish_actions(s, obj["metadata"]["uid"], obj)

    def compute_nodes(self, nodes: list[dict[str, Any]]) -> None:
        with session_scope(self.sessions) as s:
            upsert_compute_nodes(s, nodes)

    def progress(self) -> int:
        with session_scope(self.sessions) as s:
            return progress(s, self.name)

    def rows(self, kind: str, project: str | None = None) -> list[Resource]:
        with session_scope(self.sessions) as s:
            q = select(Resource).where(Resource.kind == kind, Resource.deleted_at.is_(None))
            if project is not None:
                q = q.where(Resource.project == project)
            return list(s.scalars(q.order_by(Resource.name)))

    def close(self) -> None:
        self.engine.dispose()
