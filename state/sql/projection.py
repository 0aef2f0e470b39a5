"""The projection of etcd's objects into SQL, as the conductor writes it and the views read it.

Owns: upserting an object's row by uid (one statement, never moving a row
back to an older resourceVersion), marking rows deleted, the progress
revision (``watch_progress``) readers wait on for their own writes, and the
listing queries of the views. For Instances also their Compute view row,
the actions each change stands for (recorded once, by a deterministic
request id) and their end; and the compute nodes' rows. A batch SQL refuses
is split until the objects it refuses are alone (``state.sql.refusals``):
those are returned, the rest written, progress moved on.

Must never: be the source of truth: rows only follow etcd; nor let one object
SQL refuses keep the others (or the progress) from being written.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Dialect, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from state.envelope import RESERVATION_ANNOTATION, USER_ANNOTATION, display_name
from state.instance_actions import EVENTS, actions_between, may_finish, outcome, request_id
from state.instance_states import nova_state
from state.sql.engine import checkpoint, make_engine, make_sessionmaker, session_scope
from state.sql.models import (
    Base,
    ComputeNode,
    InstanceAction,
    InstanceActionEvent,
    InstanceRow,
    MigrationRow,
    Resource,
    WatchProgress,
)
from state.sql.refusals import Refused, isolate, refusable


def _time(stamp: str | None) -> dt.datetime:
    if not stamp:
        return dt.datetime.now(dt.UTC)
    return dt.datetime.fromisoformat(stamp)  # "...Z" is UTC; strptime took 14% of a batch


def _insert(dialect: str) -> Any:
    """The INSERT with ON CONFLICT of the dialect (SQLite's or PostgreSQL's)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _upsert_many(
    session: Session, table: Any, rows: list[dict[str, Any]], keep: tuple[str, ...]
) -> None:
    """One executemany upsert by primary or unique key ``uid``; columns in ``keep`` are
    written only on insert; a row never moves back to an older ``resource_version``."""
    if not rows:
        return
    conn = session.connection()
    upsert = _upsert_stmt(conn.dialect, table.name, tuple(rows[0]), keep)
    conn.exec_driver_sql(upsert.sql, upsert.parameters(rows))


@dataclass(frozen=True)
class _DriverStatement:
    """A statement compiled once for a dialect, run with the driver's own parameters.

    SQLAlchemy's per-row parameter handling (building each row's parameters and calling
    each column's bind processor through its generic machinery) took as long as SQLite's
    own work in the conductor's batches; here the same bind processors are applied in
    one tight loop."""

    sql: str
    #: the bind names in the order of the SQL's placeholders, with their processors
    binds: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    positional: bool

    @classmethod
    def compile(cls, stmt: Any, dialect: Dialect, columns: tuple[str, ...]) -> _DriverStatement:
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        names = compiled.positiontup if compiled.positional else list(compiled.binds)
        types = [compiled.binds[name].type.dialect_impl(dialect) for name in names]
        return cls(
            sql=compiled.string,
            binds=tuple((n, t.bind_processor(dialect)) for n, t in zip(names, types, strict=True)),
            positional=compiled.positional,
        )

    def parameters(self, rows: list[dict[str, Any]]) -> list[Any]:
        binds = self.binds
        if self.positional:
            return [tuple(r[n] if p is None else p(r[n]) for n, p in binds) for r in rows]
        return [{n: r[n] if p is None else p(r[n]) for n, p in binds} for r in rows]


@cache
def _upsert_stmt(
    dialect: Dialect, table_name: str, columns: tuple[str, ...], keep: tuple[str, ...]
) -> _DriverStatement:
    """Built and compiled once per dialect, table and columns."""
    table = Base.metadata.tables[table_name]
    stmt = _insert(dialect.name)(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["uid"],
        set_={k: stmt.excluded[k] for k in columns if k not in keep},
        where=table.c.resource_version < stmt.excluded.resource_version,
    )
    return _DriverStatement.compile(stmt, dialect, columns)


def _resource_row(obj: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "uid": meta["uid"],
        "kind": obj["kind"],
        "project": meta.get("project") or "",
        "name": meta["name"],
        "resource_version": int(meta["resourceVersion"]),
        "generation": int(meta.get("generation", 1)),
        "labels": meta.get("labels") or {},
        "meta": meta,
        "spec": obj.get("spec") or {},
        "status": obj.get("status") or {},
        "created_at": _time(meta.get("creationTimestamp")),
        "updated_at": now,
        "deleted_at": None,
    }


def _instance_row(obj: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    meta, spec, status = obj["metadata"], obj.get("spec", {}), obj.get("status", {})
    nova = nova_state(obj)
    return {
        "uid": meta["uid"],
        "project": meta.get("project") or "",
        "name": display_name(obj),
        "resource_version": int(meta["resourceVersion"]),
        "host": status.get("host"),
        "flavor": spec.get("flavor", ""),
        "image": spec.get("image", ""),
        "vm_state": nova["vmState"],
        "task_state": nova["taskState"],
        "power_state": nova["powerState"],
        "status": nova["novaStatus"],
        "created_at": _time(meta.get("creationTimestamp")),
        "updated_at": now,
        "deleted_at": None,
        "user_id": (meta.get("annotations") or {}).get(USER_ANNOTATION),
        "key_name": spec.get("keyName"),
        "availability_zone": spec.get("availabilityZone"),
        "launched_at": _time(status["launchedAt"]) if status.get("launchedAt") else None,
        "tags": "".join(f",{t}" for t in spec.get("tags") or []) + ","
        if spec.get("tags")
        else None,
        "reservation_id": (meta.get("annotations") or {}).get(RESERVATION_ANNOTATION),
        "addresses": "\n".join(p["address"] for p in status.get("ports") or []) or None,
    }


def upsert_objects(session: Session, objects: list[dict[str, Any]]) -> None:
    """Rows of ``resources`` (and ``instances`` for Instances), in two statements; a row
    never moves back to an older resourceVersion."""
    now = dt.datetime.now(dt.UTC)
    res, inst = Resource.__table__, InstanceRow.__table__
    _upsert_many(
        session,
        res,
        [_resource_row(o, now) for o in objects],
        ("uid", "kind", "project", "name", "created_at"),
    )
    _upsert_many(
        session,
        inst,
        [_instance_row(o, now) for o in objects if o["kind"] == "Instance"],
        ("uid", "project", "name", "created_at"),
    )


def record_actions(
    session: Session, changes: list[dict[str, Any]], projected: dict[str, dict[str, Any]]
) -> None:
    """Records the actions that the Instance changes (in etcd order) stand for: each once
    (by its request id), with its event, in two statements.

    ``projected``: uid -> the Instance as last projected (generation and spec), kept by the
    caller and brought up to date here; the rows of instances it lacks are read."""
    if not changes:
        return
    last: dict[str, dict[str, Any] | None] = {
        uid: projected.get(uid) for uid in {obj["metadata"]["uid"] for obj in changes}
    }
    missing = [uid for uid, seen in last.items() if seen is None]
    if missing:
        for uid, generation, spec in session.execute(
            select(Resource.uid, Resource.generation, Resource.spec).where(
                Resource.uid.in_(missing)
            )
        ):
            last[uid] = {"metadata": {"generation": generation}, "spec": spec}
    now = dt.datetime.now(dt.UTC)
    rows: dict[str, dict[str, Any]] = {}
    hosts: dict[str, str | None] = {}
    #: the flavors before and after each action (what a resize moves between)
    flavors: dict[str, tuple[str, str]] = {}
    for obj in changes:
        meta = obj["metadata"]
        old = last[meta["uid"]]
        generation = int(meta.get("generation", 1))
        if old is not None and old["metadata"]["generation"] > generation:
            continue  # a replay of an older change
        for action in actions_between(old, obj):
            rid = request_id(meta["uid"], generation, action)
            rows[rid] = {
                "instance_uid": meta["uid"],
                "project": meta.get("project") or "",
                "action": action,
                "generation": generation,
                "request_id": rid,
                "start_time": now,
            }
            hosts[rid] = (obj.get("status") or {}).get("host")
            flavors[rid] = (
                (old or {}).get("spec", {}).get("flavor", ""),
                obj["spec"].get("flavor", ""),
            )
        last[meta["uid"]] = obj
    for uid, seen in last.items():
        if seen is not None:
            generation = seen["metadata"].get("generation", 1)
            projected[uid] = {"metadata": {"generation": generation}, "spec": seen.get("spec", {})}
    if not rows:
        return
    # one statement: the actions not recorded yet go in, and say their ids
    stmt = _new_actions_stmt(session.get_bind().dialect.name)
    ids = session.connection().execute(stmt, list(rows.values())).all()
    if not ids:
        return
    _record_migrations(
        session, [(rows[rid], action_id, hosts[rid], flavors[rid]) for rid, action_id in ids], now
    )
    events = [
        {
            "action_id": action_id,
            "event": EVENTS[rows[rid]["action"]],
            "start_time": now,
            "host": hosts[rid],
        }
        for rid, action_id in ids
        if rows[rid]["action"] in EVENTS  # lock and unlock are the API's alone: no event
    ]
    if events:
        session.connection().execute(insert(InstanceActionEvent), events)


@cache
def _new_actions_stmt(dialect: str) -> Any:
    """Inserts actions whose request id is not there yet, returning (request_id, id) of
    those it inserted; built once per dialect."""
    stmt = _insert(dialect)(InstanceAction)
    return stmt.on_conflict_do_nothing(index_elements=["request_id"]).returning(
        InstanceAction.request_id, InstanceAction.id
    )


#: what starting (resize) or finishing an action makes of the instance's latest migration
_MIGRATION_STARTS = {"confirmResize": "confirming", "revertResize": "reverting"}
_MIGRATION_ENDS = {
    ("resize", "Success"): "finished",
    ("confirmResize", "Success"): "confirmed",
    ("revertResize", "Success"): "reverted",
}


def _record_migrations(
    session: Session,
    started: list[tuple[dict[str, Any], int, str | None, tuple[str, str]]],
    now: dt.datetime,
) -> None:
    """A migration per resize just asked (in place on its host); a confirm or revert just
    asked moves the instance's latest migration on."""
    moves = [
        {
            "uuid": str(uuid.uuid4()),
            "instance_uid": row["instance_uid"],
            "project": row["project"],
            "action_id": action_id,
            "migration_type": "resize",
            "status": "migrating",
            "source_compute": host,
            "dest_compute": host,
            "old_flavor": old_flavor,
            "new_flavor": new_flavor,
            "created_at": now,
            "updated_at": now,
        }
        for row, action_id, host, (old_flavor, new_flavor) in started
        if row["action"] == "resize"
    ]
    if moves:
        session.connection().execute(insert(MigrationRow), moves)
    for row, _, _, _ in started:
        if row["action"] in _MIGRATION_STARTS:
            _move_latest(session, row["instance_uid"], _MIGRATION_STARTS[row["action"]], now)


def _move_latest(session: Session, uid: str, status: str, now: dt.datetime) -> None:
    latest = (
        select(func.max(MigrationRow.id)).where(MigrationRow.instance_uid == uid).scalar_subquery()
    )
    session.execute(
        update(MigrationRow).where(MigrationRow.id == latest).values(status=status, updated_at=now)
    )


def finish_actions(session: Session, latest: dict[str, dict[str, Any] | None]) -> None:
    """Ends the open actions that the instances' latest state (None: gone) shows done."""
    latest = {uid: obj for uid, obj in latest.items() if may_finish(obj)}
    if not latest:
        return
    conn = session.connection()
    open_actions = conn.execute(_OPEN_ACTIONS, {"uids": list(latest)}).all()
    now = dt.datetime.now(dt.UTC)
    done: list[dict[str, Any]] = []
    for action_id, uid, action, generation in open_actions:
        obj = latest[uid]
        result = outcome(action, generation, obj)
        if result is None:
            continue
        status = (obj or {}).get("status", {})
        message = (status.get("fault") or {}).get("message") if result == "Error" else None
        done.append(
            {
                "aid": action_id,
                "result": result,
                "message": message,
                "host": status.get("host"),
                "finished": now,
            }
        )
    if not done:
        return
    results = {d["aid"]: d["result"] for d in done}
    for action_id, uid, action, _ in open_actions:
        result = results.get(action_id)
        if action in ("resize", "confirmResize", "revertResize") and result is not None:
            _move_latest(session, uid, _MIGRATION_ENDS.get((action, result), "error"), now)
    conn.execute(_FINISH_ACTION, done)
    conn.execute(_FINISH_EVENTS, done)


# built once: SQLAlchemy then reuses their compiled forms (building them took a third of
# finish_actions' time)
_OPEN_ACTIONS = select(
    InstanceAction.id,
    InstanceAction.instance_uid,
    InstanceAction.action,
    InstanceAction.generation,
).where(
    InstanceAction.instance_uid.in_(bindparam("uids", expanding=True)),
    InstanceAction.finish_time.is_(None),
)
_FINISH_ACTION = (
    update(InstanceAction)
    .where(InstanceAction.id == bindparam("aid"))
    .values(finish_time=bindparam("finished"), message=bindparam("message"))
)
_FINISH_EVENTS = (
    update(InstanceActionEvent)
    .where(InstanceActionEvent.action_id == bindparam("aid"))
    .values(
        finish_time=bindparam("finished"),
        result=bindparam("result"),
        host=func.coalesce(InstanceActionEvent.host, bindparam("host")),
    )
)


def upsert_compute_nodes(session: Session, nodes: list[dict[str, Any]]) -> None:
    """One row per host: capacity, what is allocated, liveness (each dict has every column
    but updated_at)."""
    if not nodes:
        return
    now = dt.datetime.now(dt.UTC)
    stmt = _insert(session.get_bind().dialect.name)(ComputeNode)
    stmt = stmt.on_conflict_do_update(
        index_elements=["host"],
        set_={k: stmt.excluded[k] for k in (*nodes[0], "updated_at") if k != "host"},
    )
    session.connection().execute(stmt, [{**n, "updated_at": now} for n in nodes])


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
            .values(
                deleted_at=now,
                updated_at=now,
                vm_state="deleted",
                task_state=None,
                status="DELETED",
            )
        )
        finish_actions(session, dict.fromkeys(uids))


def live_uids(session: Session) -> set[str]:
    return set(session.scalars(select(Resource.uid).where(Resource.deleted_at.is_(None))))


def record_progress(session: Session, name: str, revision: int) -> None:
    """Progress moves forward only; one statement."""
    stmt = _progress_stmt(session.get_bind().dialect.name)
    session.connection().execute(stmt, {"name": name, "revision": revision})


@cache
def _progress_stmt(dialect: str) -> Any:
    """Built once per dialect, as ``_upsert_stmt``."""
    stmt = _insert(dialect)(WatchProgress)
    return stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"revision": stmt.excluded.revision},
        where=WatchProgress.revision < stmt.excluded.revision,
    )


def progress(session: Session, name: str) -> int:
    row = session.get(WatchProgress, name)
    return row.revision if row is not None else 0


@dataclass(frozen=True)
class _Unit:
    """One object's share of a batch: its latest state (or its last, if deleted) and the
    Instance changes it went through, in etcd order."""

    object: dict[str, Any]
    deleted: bool = False
    changes: tuple[dict[str, Any], ...] = ()


def _units(
    upserts: list[dict[str, Any]],
    deletes: list[dict[str, Any]],
    instance_changes: list[dict[str, Any]],
) -> list[_Unit]:
    changes: dict[str, list[dict[str, Any]]] = {}
    for obj in instance_changes:
        changes.setdefault(obj["metadata"]["uid"], []).append(obj)
    return [
        *(_Unit(o, False, tuple(changes.get(o["metadata"]["uid"], ()))) for o in upserts),
        *(_Unit(o, True) for o in deletes),
    ]


class Projection:
    """A projector's handle on one database: batches of changes in single transactions.

    A batch SQL refuses is written again split in halves until each object it refuses
    is alone (``state.sql.refusals``): every other object is written, the refused ones
    are returned to the caller to report, and progress moves past them all."""

    def __init__(self, url: str, name: str = "conductor") -> None:
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self.name = name
        #: uid -> each Instance as last projected (generation and spec), for record_actions;
        #: an entry missing is read from its row
        self._instances: dict[str, dict[str, Any]] = {}

    def apply(
        self,
        upserts: list[dict[str, Any]],
        deletes: list[dict[str, Any]],
        revision: int,
        instance_changes: list[dict[str, Any]] | None = None,
    ) -> list[Refused[dict[str, Any]]]:
        """Applies one batch and records that SQL now reflects etcd up to ``revision``;
        returns the objects SQL refused (their rows stay as they were).

        ``deletes``: the objects gone, as last seen. ``instance_changes``: every Instance
        the batch saw, in etcd order (``upserts`` holds only the last of each), for the
        actions they stand for."""
        units = _units(upserts, deletes, instance_changes or [])
        try:
            self._write(units, revision)
            return []
        except Exception as exc:
            if not refusable(exc):
                raise
        refused = isolate(units, lambda part: self._write(part, 0))
        with session_scope(self.sessions) as s:
            record_progress(s, self.name, revision)
        return [Refused(r.unit.object, r.reason, r.message) for r in refused]

    def _write(self, units: Sequence[_Unit], revision: int) -> None:
        """One transaction: the units' rows, their actions and (unless 0) the progress."""
        try:
            with session_scope(self.sessions) as s:
                changes = [c for u in units for c in u.changes]
                record_actions(s, changes, self._instances)
                self._upsert(s, [u.object for u in units if not u.deleted])
                gone = [u.object["metadata"]["uid"] for u in units if u.deleted]
                mark_deleted(s, gone)
                for uid in gone:
                    self._instances.pop(uid, None)
                if revision:
                    record_progress(s, self.name, revision)
        except Exception:
            for u in units:  # rolled back: what record_actions learnt is read again
                self._instances.pop(u.object["metadata"]["uid"], None)
            raise

    def sync(self, present: list[dict[str, Any]], revision: int) -> list[Refused[dict[str, Any]]]:
        """After a full list: upserts everything present and marks every other row deleted;
        returns the objects SQL refused, as ``apply``."""
        self._instances.clear()
        try:
            with session_scope(self.sessions) as s:
                self._sync(s, present, revision)
            return []
        except Exception as exc:
            self._instances.clear()
            if not refusable(exc):
                raise
        units = [_Unit(o, False, (o,) if o["kind"] == "Instance" else ()) for o in present]
        refused = isolate(units, lambda part: self._write(part, 0))
        with session_scope(self.sessions) as s:
            self._sync(s, [], revision, {o["metadata"]["uid"] for o in present})
        return [Refused(r.unit.object, r.reason, r.message) for r in refused]

    def _sync(
        self, s: Session, present: list[dict[str, Any]], revision: int, seen: Iterable[str] = ()
    ) -> None:
        """``seen``: uids present besides those of ``present`` (refused, or written already)."""
        record_actions(s, [o for o in present if o["kind"] == "Instance"], self._instances)
        self._upsert(s, present)
        kept = set(seen) | {obj["metadata"]["uid"] for obj in present}
        mark_deleted(s, live_uids(s) - kept)
        record_progress(s, self.name, revision)

    @staticmethod
    def _upsert(s: Session, objects: list[dict[str, Any]]) -> None:
        upsert_objects(s, objects)
        finish_actions(s, {o["metadata"]["uid"]: o for o in objects if o["kind"] == "Instance"})

    def checkpoint(self) -> None:
        checkpoint(self.engine)

    def compute_nodes(self, nodes: list[dict[str, Any]]) -> list[Refused[dict[str, Any]]]:
        """Writes the hosts' rows; returns those SQL refused (the others are written)."""

        def write(part: Sequence[dict[str, Any]]) -> None:
            with session_scope(self.sessions) as s:
                upsert_compute_nodes(s, list(part))

        return isolate(nodes, write)

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
