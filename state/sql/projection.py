"""The projection of etcd's objects into SQL, as the conductor writes it and the views read it.

Owns: upserting an object's row by uid (one statement, never moving a row
back to an older resourceVersion), marking rows deleted, the progress
revision (``watch_progress``) readers wait on for their own writes, and the
listing queries of the views.

Must never: be the source of truth: rows only follow etcd.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from state.sql.engine import make_engine, make_sessionmaker, session_scope
from state.sql.models import Resource, WatchProgress


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


def mark_deleted(session: Session, uids: Iterable[str]) -> None:
    uids = list(uids)
    if uids:
        session.execute(
            update(Resource)
            .where(Resource.uid.in_(uids), Resource.deleted_at.is_(None))
            .values(deleted_at=dt.datetime.now(dt.UTC))
        )


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

    def apply(self, upserts: list[dict[str, Any]], deletes: list[str], revision: int) -> None:
        """Applies one batch and records that SQL now reflects etcd up to ``revision``."""
        with session_scope(self.sessions) as s:
            for obj in upserts:
                upsert_resource(s, obj)
            mark_deleted(s, deletes)
            record_progress(s, self.name, revision)

    def sync(self, present: list[dict[str, Any]], revision: int) -> None:
        """After a full list: upserts everything present and marks every other row deleted."""
        with session_scope(self.sessions) as s:
            seen = set()
            for obj in present:
                upsert_resource(s, obj)
                seen.add(obj["metadata"]["uid"])
            mark_deleted(s, live_uids(s) - seen)
            record_progress(s, self.name, revision)

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
