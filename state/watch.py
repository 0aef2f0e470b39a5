"""Object watches that never lose or repeat a change.

Owns: turning etcd's key-level watch (spec and status keys) into a stream of
object events (ADDED, MODIFIED, DELETED, and BOOKMARK for progress), resuming
from the last seen revision when the stream breaks, and re-listing when the
revision it needs was compacted, then emitting exactly the differences.

Must never: hand out an object older than one it already delivered, or
deliver the same (object, resourceVersion) twice.

How: one etcd watch covers every spec and status key (they sit next to each
other under ``/desired/v1/s``) and is filtered here by kind and project, so
the spec and status of an object arrive in one ordered stream. The watch
keeps, per object, the spec and status it last saw with their mod revisions;
that cache is both the base for merging status into objects and the state a
re-list is compared with.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from state import keys
from state.envelope import Obj
from state.errors import Gone, Transient
from state.etcd import EtcdClient, KeyValue, prefix_end
from state.store import attach_status, decode_spec

log = logging.getLogger(__name__)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"

_RANGE_START = f"{keys.ROOT}/spec/".encode()
_RANGE_END = prefix_end(f"{keys.ROOT}/status/".encode())


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    type: str
    #: the whole object (spec and status) after the change; for DELETED the last
    #: state seen; None for BOOKMARK
    object: Obj | None
    #: the etcd revision this event brings the watcher to
    revision: int


@dataclass
class _Entry:
    spec: KeyValue
    status: KeyValue | None

    def object(self) -> Obj:
        return attach_status(decode_spec(self.spec), self.status)


class ObjectWatch:
    """Watches the objects of one kind (all kinds if None), in one project or all.

    ``revision=0`` starts with an ADDED event for every existing object and a
    BOOKMARK once they are all out (the informer's "synced"). ``revision=N``
    delivers every change after revision N: the state at N is read (which
    raises ``Gone`` if N is compacted) and not re-sent; a BOOKMARK at N says
    the watch has started.
    """

    def __init__(
        self,
        etcd: EtcdClient,
        kind: str | None = None,
        project: str | None = None,
        *,
        revision: int = 0,
        retry_delay: float = 0.2,
        max_retry_delay: float = 5.0,
    ) -> None:
        self.etcd = etcd
        self.kind = kind.lower() if kind else None
        self.project = project
        self.start_revision = revision
        self.revision = revision
        self._entries: dict[tuple[str, str | None, str], _Entry] = {}
        self._orphan_status: dict[tuple[str, str | None, str], KeyValue] = {}
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        #: how many times the watch had to re-list after a compaction
        self.relists = 0
        #: called with each Transient error before the watch retries (metrics, logs)
        self.on_retry: Callable[[Exception], None] = lambda exc: None

    def _wanted(self, key: bytes) -> tuple[str, tuple[str, str | None, str]] | None:
        try:
            part, kind, project, name = keys.parse_object_key(key)
        except ValueError:
            return None
        if self.kind is not None and kind != self.kind:
            return None
        if self.project is not None and project != self.project:
            return None
        return part, (kind, project, name)

    async def _snapshot(self, revision: int) -> int:
        """Reads every wanted spec and status at ``revision`` (0: now) into the cache."""
        specs: dict[tuple[str, str | None, str], KeyValue] = {}
        statuses: dict[tuple[str, str | None, str], KeyValue] = {}
        if self.kind is not None:
            ranges = [
                keys.spec_prefix(self.kind, self.project),
                keys.status_prefix(self.kind, self.project),
            ]
        else:
            ranges = [keys.spec_prefix(), keys.status_prefix()]
        for prefix in ranges:
            res = await self.etcd.range(prefix, prefix_end(prefix), revision=revision)
            revision = revision or res.revision
            for kv in res.kvs:
                wanted = self._wanted(kv.key)
                if wanted is None:
                    continue
                part, ident = wanted
                (specs if part == "spec" else statuses)[ident] = kv
        self._entries = {i: _Entry(kv, statuses.pop(i, None)) for i, kv in specs.items()}
        self._orphan_status = statuses
        return revision

    def cached(self) -> list[Obj]:
        """Every object as this watch last saw it."""
        return [e.object() for e in self._entries.values()]

    async def __aiter__(self) -> AsyncGenerator[ObjectEvent, None]:
        if self.start_revision == 0:
            self.revision = await self._snapshot(0)
            for e in list(self._entries.values()):
                yield ObjectEvent(ADDED, e.object(), self.revision)
            yield ObjectEvent(BOOKMARK, None, self.revision)
        else:
            await self._snapshot(self.start_revision)
            self.revision = self.start_revision
            yield ObjectEvent(BOOKMARK, None, self.revision)
        delay = self._retry_delay
        while True:
            try:
                async for batch in self.etcd.watch(_RANGE_START, _RANGE_END, self.revision + 1):
                    delay = self._retry_delay
                    for kv_event in batch.events:
                        out = self._apply(kv_event.kv, kv_event.deleted)
                        if out is not None:
                            yield out
                    if batch.revision > self.revision:
                        self.revision = batch.revision
                        if not batch.events:
                            yield ObjectEvent(BOOKMARK, None, self.revision)
            except Gone:
                log.info("watch compacted, re-listing", extra={"revision": self.revision})
                for out in await self._relist():
                    yield out
            except Transient as exc:
                self.on_retry(exc)
                log.warning("watch broke, resuming: %s", exc, extra={"revision": self.revision})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)

    def _apply(self, kv: KeyValue, deleted: bool) -> ObjectEvent | None:
        wanted = self._wanted(kv.key)
        if wanted is None:
            return None
        part, ident = wanted
        revision = kv.mod_revision
        entry = self._entries.get(ident)
        if part == "spec":
            if deleted:
                if entry is None:
                    return None
                del self._entries[ident]
                self._orphan_status.pop(ident, None)
                return ObjectEvent(DELETED, entry.object(), revision)
            if entry is not None and kv.mod_revision <= entry.spec.mod_revision:
                return None  # seen already (a resumed stream repeats nothing new)
            if entry is None:
                self._entries[ident] = _Entry(kv, self._orphan_status.pop(ident, None))
                return ObjectEvent(ADDED, self._entries[ident].object(), revision)
            entry.spec = kv
            return ObjectEvent(MODIFIED, entry.object(), revision)
        # a status key
        if entry is None:
            if deleted:
                self._orphan_status.pop(ident, None)
            else:
                self._orphan_status[ident] = kv
            return None
        if deleted:
            if entry.status is None:
                return None
            entry.status = None
            return ObjectEvent(MODIFIED, entry.object(), revision)
        if entry.status is not None and kv.mod_revision <= entry.status.mod_revision:
            return None
        entry.status = kv
        return ObjectEvent(MODIFIED, entry.object(), revision)

    async def _relist(self) -> list[ObjectEvent]:
        """After a compaction: read the present state and emit the differences."""
        self.relists += 1
        before = self._entries
        revision = await self._snapshot(0)
        out: list[ObjectEvent] = []
        for ident, old in before.items():
            if ident not in self._entries:
                out.append(ObjectEvent(DELETED, old.object(), revision))
        for ident, new in self._entries.items():
            old_entry = before.get(ident)
            if old_entry is None:
                out.append(ObjectEvent(ADDED, new.object(), revision))
            elif _changed(old_entry, new):
                if old_entry.spec.create_revision != new.spec.create_revision:
                    # deleted and created again while we could not see it
                    out.append(ObjectEvent(DELETED, old_entry.object(), revision))
                    out.append(ObjectEvent(ADDED, new.object(), revision))
                else:
                    out.append(ObjectEvent(MODIFIED, new.object(), revision))
        self.revision = revision
        return out


def _changed(a: _Entry, b: _Entry) -> bool:
    def rev(kv: KeyValue | None) -> int:
        return kv.mod_revision if kv is not None else 0

    return (rev(a.spec), rev(a.status)) != (rev(b.spec), rev(b.status))


def event_to_json(ev: ObjectEvent) -> dict[str, Any]:
    """The wire form of an event, as the declarative API streams it."""
    if ev.type == BOOKMARK:
        return {"type": BOOKMARK, "object": {"metadata": {"resourceVersion": str(ev.revision)}}}
    return {"type": ev.type, "object": ev.object}


def dumps_event(ev: ObjectEvent) -> bytes:
    return json.dumps(event_to_json(ev), separators=(",", ":")).encode() + b"\n"
