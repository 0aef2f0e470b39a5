"""Server lists from the conductor's ``instances`` rows: filters, sort keys and markers.

Owns: one query for a page of servers (each with the object as the
conductor last projected it), ordered by sort keys that always end in
``created_at`` and ``uid`` so that a marker names one place in the order, and
the page that follows a marker.

Must never: write; decide who may see what (the caller's query says which
project, or every project); run a user's pattern (``name``, ``ip``) other than
by RE2 (SQLite) or for longer than ``patterns.BUDGET`` (both backends).

Nullable sort columns are compared as empty strings, so that SQLite and
PostgreSQL (which disagree on where NULLs sort) give the same order.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, false, func, not_, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased

from state import patterns
from state.errors import BadRequest, TimeLimitExceeded
from state.sql.engine import time_limit
from state.sql.models import InstanceRow, Resource

#: Nova's sort keys that have a column here
SORT_COLUMNS: dict[str, Any] = {
    "created_at": InstanceRow.created_at,
    "updated_at": InstanceRow.updated_at,
    "display_name": InstanceRow.name,
    "hostname": InstanceRow.name,
    "uuid": InstanceRow.uid,
    "vm_state": InstanceRow.vm_state,
    "task_state": func.coalesce(InstanceRow.task_state, ""),
    "power_state": InstanceRow.power_state,
    "host": func.coalesce(InstanceRow.host, ""),
    "node": func.coalesce(InstanceRow.host, ""),
    "project_id": InstanceRow.project,
    "user_id": func.coalesce(InstanceRow.user_id, ""),
    "key_name": func.coalesce(InstanceRow.key_name, ""),
    "availability_zone": func.coalesce(InstanceRow.availability_zone, ""),
    "image_ref": InstanceRow.image,
    "instance_type_id": InstanceRow.flavor,
}


class MarkerNotFound(BadRequest):
    """The marker names no server the query could list."""


@dataclass(frozen=True)
class ServerQuery:
    #: one project's servers, or every project's (None)
    project: str | None
    #: a regular expression (RE2's syntax) the name must contain a match of
    name: str | None = None
    vm_states: frozenset[str] = frozenset()
    #: empty: any task state; "default" stands for no task
    task_states: frozenset[str] = frozenset()
    #: True: only deleted servers; False: only live ones; None: both
    deleted: bool | None = False
    changes_since: dt.datetime | None = None
    changes_before: dt.datetime | None = None
    #: exact matches on columns: host, user_id, uid, key_name, availability_zone,
    #: image, flavor
    equal: dict[str, str] = field(default_factory=dict)
    #: a regular expression (RE2's syntax) one of its fixed addresses must contain a
    #: match of
    ip: str | None = None
    #: tags a server must have all of, any of, not all of, none of
    tags: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    not_tags: tuple[str, ...] = ()
    not_tags_any: tuple[str, ...] = ()
    #: (Nova sort key, "asc" or "desc"), most significant first
    sort: tuple[tuple[str, str], ...] = (("created_at", "desc"),)
    limit: int = 1000
    marker: str | None = None


@dataclass(frozen=True)
class ServerRow:
    uid: str
    name: str
    #: the Instance as the conductor last projected it
    object: dict[str, Any]
    updated_at: dt.datetime
    deleted: bool


def _order(q: ServerQuery) -> list[tuple[Any, str]]:
    keys = [(SORT_COLUMNS[k], d) for k, d in q.sort]
    first_dir = q.sort[0][1] if q.sort else "desc"
    named = {k for k, _ in q.sort}
    if "created_at" not in named:
        keys.append((InstanceRow.created_at, first_dir))
    if "uuid" not in named:
        keys.append((InstanceRow.uid, first_dir))
    return keys


def _after(order: list[tuple[Any, str]], values: list[Any]) -> ColumnElement[bool]:
    """Rows after the marker's values in ``order``: (k1 beyond v1) or (k1 = v1 and k2
    beyond v2) or ..."""
    clauses = []
    for i, (col, direction) in enumerate(order):
        beyond = col > values[i] if direction == "asc" else col < values[i]
        same = [order[j][0] == values[j] for j in range(i)]
        clauses.append(and_(*same, beyond))
    return or_(*clauses)


def _filters(q: ServerQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if q.project is not None:
        where.append(InstanceRow.project == q.project)
    # deleted: gone from etcd, or still there (a finalizer holds it) but its domain is
    # removed (Nova's DELETED, which a client waiting for the delete stops at)
    if q.deleted is True:
        where.append(or_(InstanceRow.deleted_at.is_not(None), InstanceRow.vm_state == "deleted"))
    elif q.deleted is False:
        where.extend([InstanceRow.deleted_at.is_(None), InstanceRow.vm_state != "deleted"])
    if q.name is not None:
        where.append(InstanceRow.name.regexp_match(q.name))
    if q.vm_states:
        where.append(InstanceRow.vm_state.in_(sorted(q.vm_states)))
    if q.task_states and "default" not in q.task_states:
        where.append(InstanceRow.task_state.in_(sorted(q.task_states)))
    if q.changes_since is not None:
        where.append(InstanceRow.updated_at >= q.changes_since)
    if q.changes_before is not None:
        where.append(InstanceRow.updated_at <= q.changes_before)
    columns = {
        "host": InstanceRow.host,
        "user_id": InstanceRow.user_id,
        "uid": InstanceRow.uid,
        "key_name": InstanceRow.key_name,
        "availability_zone": InstanceRow.availability_zone,
        "image": InstanceRow.image,
        "flavor": InstanceRow.flavor,
        "reservation_id": InstanceRow.reservation_id,
    }
    for name, value in q.equal.items():
        where.append(columns[name] == value)
    if q.ip is not None:
        # one address per line: a match within a line is a match of one address
        # (inline, as SQLite's REGEXP takes no flags; PostgreSQL reads (?m) as (?n), the same)
        where.append(func.coalesce(InstanceRow.addresses, "").regexp_match(_multiline(q.ip)))
    where.extend(_tag_filters(q))
    return where


#: a pattern's leading flags, as RE2 and PostgreSQL both read them (only there for PostgreSQL)
_FLAGS = re.compile(r"\(\?([a-zA-Z]+)\)")


def _multiline(pattern: str) -> str:
    """``pattern`` with ``^`` and ``$`` at each line: (?m), merged with its own leading flags."""
    flags = _FLAGS.match(pattern)
    if flags is not None:
        return f"(?m{flags.group(1)})" + pattern[flags.end() :]
    return "(?m)" + pattern


def _check_patterns(q: ServerQuery) -> None:
    """``BadPattern`` for a pattern RE2 does not take (compiled once, for SQLite's REGEXP)."""
    if q.name is not None:
        patterns.compiled("name", q.name)
    if q.ip is not None:
        patterns.compiled("ip", q.ip)
        patterns.compiled("ip", _multiline(q.ip))


def _tag_filters(q: ServerQuery) -> list[ColumnElement[bool]]:
    def has(tag: str) -> ColumnElement[bool]:
        return func.coalesce(InstanceRow.tags, "").contains(f",{tag},", autoescape=True)

    where: list[ColumnElement[bool]] = []
    if q.tags:
        where.append(and_(*(has(t) for t in q.tags)))
    if q.tags_any:
        where.append(or_(*(has(t) for t in q.tags_any)))
    if q.not_tags:
        where.append(not_(and_(*(has(t) for t in q.not_tags))))
    if q.not_tags_any:
        where.append(not_(or_(*(has(t) for t in q.not_tags_any))))
    return where


def _execute(session: Session, stmt: Any, q: ServerQuery) -> list[Any]:
    """The rows of ``stmt``; with a user's pattern, within ``patterns.BUDGET`` seconds and
    ``BadPattern`` past them (or for a pattern PostgreSQL refuses where RE2 did not)."""
    if q.name is None and q.ip is None:
        return list(session.execute(stmt))
    field, pattern = ("name", q.name) if q.name is not None else ("ip", q.ip or "")
    try:
        with time_limit(session, patterns.BUDGET):
            return list(session.execute(stmt))
    except TimeLimitExceeded:
        why = f"The filter took longer than {patterns.BUDGET:g} s."
        raise patterns.BadPattern(field, pattern, why) from None
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) != "2201B":  # invalid_regular_expression
            raise
        why = "PostgreSQL: " + str(exc.orig).strip().splitlines()[0]
        raise patterns.BadPattern(field, pattern, why) from None


def list_servers(session: Session, q: ServerQuery) -> list[ServerRow]:
    """One page of servers in the query's order, after its marker (``BadPattern`` for a
    ``name`` or ``ip`` that RE2 does not take, or whose query runs past
    ``patterns.BUDGET``)."""
    _check_patterns(q)
    order = _order(q)
    where = _filters(q)
    if q.marker is not None:
        scope = [InstanceRow.uid == q.marker]
        if q.project is not None:
            scope.append(InstanceRow.project == q.project)
        values = session.execute(select(*(c for c, _ in order)).where(*scope)).first()
        if values is None:
            raise MarkerNotFound(f"marker [{q.marker}] not found")
        where.append(_after(order, list(values)))
    stmt = (
        select(InstanceRow, Resource.meta, Resource.spec, Resource.status)
        .join(Resource, Resource.uid == InstanceRow.uid)
        .where(*where)
        .order_by(*(c.asc() if d == "asc" else c.desc() for c, d in order))
        .limit(q.limit)
    )
    found = _execute(session, stmt, q)
    return [
        ServerRow(
            uid=row.uid,
            name=row.name,
            object={
                "kind": "Instance",
                "metadata": {**_columns_meta(row), **meta},
                "spec": spec,
                "status": status,
            },
            updated_at=row.updated_at,
            deleted=row.deleted_at is not None,
        )
        for row, meta, spec, status in found
    ]


def _columns_meta(row: InstanceRow) -> dict[str, Any]:
    """The metadata the columns hold (all of it, for rows projected before ``meta``)."""
    return {
        "uid": row.uid,
        "name": row.name,
        "project": row.project,
        "creationTimestamp": row.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


@dataclass(frozen=True)
class ServerRef:
    """Where a server's object is, and what the policy checks of it."""

    project: str
    #: the Instance's object name
    name: str
    updated_at: dt.datetime
    #: its project's uid ("" when the project is gone)
    project_uid: str
    #: who made it ("" when not known)
    user_id: str = ""


#: the project of a server, joined by name (one alias, so that statements cache)
_PROJECT = aliased(Resource, name="project_of")


@cache
def _server_ref_query(deleted: bool) -> Any:
    """Built once per variant: SQLAlchemy then reuses its compiled form (building it per
    call cost about a millisecond on PostgreSQL)."""
    live = [] if deleted else [InstanceRow.deleted_at.is_(None)]
    return (
        select(
            InstanceRow.project,
            Resource.name,
            InstanceRow.updated_at,
            _PROJECT.uid,
            InstanceRow.user_id,
        )
        .join(Resource, Resource.uid == InstanceRow.uid)
        .outerjoin(
            _PROJECT,
            and_(
                _PROJECT.kind == "Project",
                _PROJECT.name == InstanceRow.project,
                _PROJECT.deleted_at.is_(None),
            ),
        )
        .where(InstanceRow.uid == bindparam("uid"), *live)
    )


def server_ref(session: Session, uid: str, deleted: bool = False) -> ServerRef | None:
    """Where the live server ``uid`` is (or, with ``deleted``, was)."""
    row = session.execute(_server_ref_query(deleted), {"uid": uid}).first()
    return ServerRef(row[0], row[1], row[2], row[3] or "", row[4] or "") if row else None


def name_by_uid(session: Session, kind: str, uid: str) -> str | None:
    """The name of the live object of ``kind`` with this uid."""
    return session.scalar(
        select(Resource.name).where(
            Resource.kind == kind, Resource.uid == uid, Resource.deleted_at.is_(None)
        )
    )


def uids_by_name(session: Session, names: dict[str, set[str]]) -> dict[tuple[str, str, str], str]:
    """The live objects with these names, per kind: (kind, project, name) → uid."""
    found = objects_by_name(session, names, whole=())
    return {key: obj["metadata"]["uid"] for key, obj in found.items()}


def objects_by_name(
    session: Session, names: dict[str, set[str]], whole: tuple[str, ...] = ("Flavor",)
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The live objects with these names, per kind: (kind, project, name) → the object
    as SQL has it: its uid and name, and for the kinds in ``whole`` its metadata and
    spec too (the others' are left unread)."""
    wanted = [(kind, sorted(n)) for kind, n in sorted(names.items()) if n]
    if not wanted:
        return {}
    query = _by_name_query(tuple(kind for kind, _ in wanted), whole)
    rows = session.execute(query, {f"names_{i}": n for i, (_, n) in enumerate(wanted)})
    return {
        (kind, project, name): {
            "metadata": {**(meta or {}), "uid": uid, "name": name},
            "spec": spec or {},
        }
        for kind, project, name, uid, meta, spec in rows
    }


@cache
def _by_name_query(kinds: tuple[str, ...], whole: tuple[str, ...]) -> Any:
    """Built once per set of kinds, the names bound at each execution."""
    full = Resource.kind.in_(whole) if whole else false()
    return select(
        Resource.kind,
        Resource.project,
        Resource.name,
        Resource.uid,
        case((full, Resource.meta), else_=None),
        case((full, Resource.spec), else_=None),
    ).where(
        or_(
            *(
                and_(
                    Resource.kind == kind,
                    Resource.name.in_(bindparam(f"names_{i}", expanding=True)),
                )
                for i, kind in enumerate(kinds)
            )
        ),
        Resource.deleted_at.is_(None),
    )
