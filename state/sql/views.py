"""Read-only queries of the conductor's SQL views, for the API servers.

Owns: reading server lists, instance actions and their events, and waiting
until SQL reflects etcd up to a revision (so that a client reads its own
writes).

Must never: write.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from sqlalchemy import select

from state.sql.engine import make_engine, make_sessionmaker, session_scope
from state.sql.hosts import HostRow, ObjectRow, hosts, objects_of, servers_on
from state.sql.migration_lists import Migration, MigrationQuery, migrations
from state.sql.models import InstanceAction, InstanceActionEvent
from state.sql.projection import progress
from state.sql.server_lists import (
    ServerQuery,
    ServerRef,
    ServerRow,
    list_servers,
    name_by_uid,
    objects_by_name,
    server_ref,
    uids_by_name,
)
from state.sql.usage import ServerUsage, server_usages


def _stamp(when: dt.datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") if when is not None else None


class ComputeViews:
    def __init__(self, url: str, projector: str = "conductor") -> None:
        self.engine = make_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self.projector = projector
        #: the highest progress read so far: SQL reflects etcd at least up to it
        self._seen = 0

    def _progress(self) -> int:
        with session_scope(self.sessions) as s:
            return progress(s, self.projector)

    async def caught_up(self, revision: int, timeout: float = 2.0) -> bool:
        """Waits (briefly) until SQL reflects etcd up to ``revision``."""
        if revision <= self._seen:
            return True
        deadline = time.monotonic() + timeout
        while (seen := await asyncio.to_thread(self._progress)) < revision:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        self._seen = max(self._seen, seen)
        return True

    def _actions(self, uid: str) -> list[dict[str, Any]]:
        with session_scope(self.sessions) as s:
            rows = s.scalars(
                select(InstanceAction)
                .where(InstanceAction.instance_uid == uid)
                .order_by(InstanceAction.start_time.desc(), InstanceAction.id.desc())
            )
            return [
                {
                    "action": a.action,
                    "instance_uuid": a.instance_uid,
                    "message": a.message,
                    "request_id": a.request_id,
                    "start_time": _stamp(a.start_time),
                    "id": a.id,
                }
                for a in rows
            ]

    async def actions(self, uid: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._actions, uid)

    def _events(self, action_id: int) -> list[dict[str, Any]]:
        with session_scope(self.sessions) as s:
            rows = s.scalars(
                select(InstanceActionEvent)
                .where(InstanceActionEvent.action_id == action_id)
                .order_by(InstanceActionEvent.id)
            )
            return [
                {
                    "event": e.event,
                    "start_time": _stamp(e.start_time),
                    "finish_time": _stamp(e.finish_time),
                    "result": e.result,
                    "traceback": None,
                }
                for e in rows
            ]

    async def events(self, action_id: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._events, action_id)

    def _read(self, fn: Any, *args: Any) -> Any:
        with session_scope(self.sessions) as s:
            return fn(s, *args)

    async def servers(self, query: ServerQuery) -> list[ServerRow]:
        return await asyncio.to_thread(self._read, list_servers, query)

    async def server_ref(self, uid: str, deleted: bool = False) -> ServerRef | None:
        """Where the live server ``uid`` is (or, with ``deleted``, was)."""
        return await asyncio.to_thread(self._read, server_ref, uid, deleted)

    async def name_by_uid(self, kind: str, uid: str) -> str | None:
        return await asyncio.to_thread(self._read, name_by_uid, kind, uid)

    async def uids_by_name(self, names: dict[str, set[str]]) -> dict[tuple[str, str, str], str]:
        """Per kind, the uids of live objects with these names: (kind, project, name) → uid."""
        return await asyncio.to_thread(self._read, uids_by_name, names)

    async def objects_by_name(
        self, names: dict[str, set[str]]
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """(kind, project, name) → the object as SQL has it (flavors whole)."""
        return await asyncio.to_thread(self._read, objects_by_name, names)

    async def hosts(self, name: str | None = None) -> list[HostRow]:
        """Every compute host (or the one named) with its node and Host spec."""
        return await asyncio.to_thread(self._read, hosts, name)

    async def migrations(self, query: MigrationQuery) -> list[Migration]:
        return await asyncio.to_thread(self._read, migrations, query)

    async def objects(self, kind: str) -> list[ObjectRow]:
        """The live cluster-scoped objects of ``kind`` with their row ids."""
        return await asyncio.to_thread(self._read, objects_of, kind)

    async def servers_on(self, host: str) -> list[tuple[str, str]]:
        return await asyncio.to_thread(self._read, servers_on, host)

    async def usages(
        self, start: dt.datetime, stop: dt.datetime, project: str | None = None
    ) -> list[ServerUsage]:
        """The servers (of ``project``, or all) that ran between ``start`` and ``stop``."""
        return await asyncio.to_thread(self._read, server_usages, start, stop, project)

    def close(self) -> None:
        self.engine.dispose()
