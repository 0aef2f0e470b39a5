"""Object watches that never lose or repeat a change.

Owns: turning etcd's key-level watch (spec and status keys) into a stream of
object events (ADDED, MODIFIED, DELETED, and BOOKMARK for progress), resuming
from the last seen revision when the stream breaks, and re-listing when the
revision it needs was compacted, then emitting exactly the differences.

Must never: hand out an object older than one it already delivered, or
deliver the same (object, resourceVersion) twice; nor end because of what a
key holds: a spec or status that is not an object's JSON (written straight
into etcd) is logged and not delivered, as if absent, until it is written
again.

How: the spec and status keys of all kinds sit next to each other under
``/desired/v1/s``, so one etcd watch delivers the spec and status of an object
in one ordered stream; the watches of one client share that stream
(``state.object_feed``) and filter it here by kind and project. A watch from
a given revision has a stream of its own. The watch keeps, per object, the
spec and status it last saw with their mod revisions; that cache is both the
base for merging status into objects and the state a re-list is compared
with.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from state import keys
from state.envelope import Obj
from state.errors import Gone, Transient
from state.etcd import EtcdClient, KeyValue, prefix_end
from state.object_feed import RANGE_END, RANGE_START, Ident, KeyChange, ObjectFeed, key_changes
from state.store import attach_status, decode_spec

log = logging.getLogger(__name__)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"


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
    #: the latest spec that held an object (what a deletion reports if the last did not)
    good: KeyValue | None = None

    def object(self) -> Obj | None:
        """The object, or None (logged) when its keys do not hold one."""
        try:
            obj = attach_status(decode_spec(self.spec), self.status)
            meta = obj["metadata"]
            if isinstance(obj["kind"], str) and isinstance(meta["name"], str) and meta["uid"]:
                self.good = self.spec
                return obj
            raise TypeError("kind, metadata.name or metadata.uid is not a string")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error(
                "not an object, skipped until written again: %s: %s",
                type(exc).__name__,
                exc,
                extra={"key": ascii(self.spec.key), "revision": self.spec.mod_revision},
            )
            return None


def _event(type_: str, entry: _Entry, revision: int) -> ObjectEvent | None:
    obj = entry.object()
    if obj is None and type_ == DELETED and entry.good is not None:
        obj = _Entry(entry.good, None).object()  # its watchers saw this one: it goes
    return None if obj is None else ObjectEvent(type_, obj, revision)


class ObjectWatch:
    """Watches the objects of one kind (all kinds if None), in one project or all.

    ``revision=0`` starts with an ADDED event for every existing object and a
    BOOKMARK once they are all out (the informer's "synced"). ``revision=N``
    delivers every change after revision N: the state at N is read (which
    raises ``Gone`` if N is compacted) and not re-sent; a BOOKMARK at N says
    the watch has started. ``retry_delay`` and ``max_retry_delay`` space the
    attempts to resume a broken stream (the shared one's if this is the first
    watch of its client).
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
        self._entries: dict[Ident, _Entry] = {}
        self._orphan_status: dict[Ident, KeyValue] = {}
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        #: how many times the watch had to re-list after a compaction
        self.relists = 0

    def _wants(self, kind: str, project: str | None) -> bool:
        return (self.kind is None or kind == self.kind) and (
            self.project is None or project == self.project
        )

    async def _snapshot(self, revision: int) -> int:
        """Reads every wanted spec and status at ``revision`` (0: now) into the cache."""
        specs: dict[Ident, KeyValue] = {}
        statuses: dict[Ident, KeyValue] = {}
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
                try:
                    part, kind, project, name = keys.parse_object_key(kv.key)
                except ValueError:
                    continue
                if self._wants(kind, project):
                    (specs if part == "spec" else statuses)[(kind, project, name)] = kv
        self._entries = {i: _Entry(kv, statuses.pop(i, None)) for i, kv in specs.items()}
        self._orphan_status = statuses
        return revision

    def cached(self) -> list[Obj]:
        """Every object as this watch last saw it."""
        return [o for e in self._entries.values() if (o := e.object()) is not None]

    async def __aiter__(self) -> AsyncGenerator[ObjectEvent, None]:
        if self.start_revision:
            async for event in self._from_revision():
                yield event
            return
        feed = ObjectFeed.of(
            self.etcd, retry_delay=self._retry_delay, max_retry_delay=self._max_retry_delay
        )
        subscription = await feed.subscribe(self.kind)
        try:
            # listed after subscribing: a change the feed hands out again is in the list
            self.revision = await self._snapshot(0)
            for e in list(self._entries.values()):
                if (added := _event(ADDED, e, self.revision)) is not None:
                    yield added
            yield ObjectEvent(BOOKMARK, None, self.revision)
            while True:
                batch = await subscription.next()
                if batch.relist:
                    for out in await self._relist():
                        yield out
                    continue
                for event in self._batch(batch.revision, batch.changes, batch.progress):
                    yield event
        finally:
            subscription.close()

    async def _from_revision(self) -> AsyncGenerator[ObjectEvent, None]:
        """From ``start_revision`` on, through a stream of its own."""
        await self._snapshot(self.start_revision)
        yield ObjectEvent(BOOKMARK, None, self.revision)
        delay = self._retry_delay
        while True:
            try:
                async for batch in self.etcd.watch(RANGE_START, RANGE_END, self.revision + 1):
                    delay = self._retry_delay
                    for event in self._batch(batch.revision, key_changes(batch), not batch.events):
                        yield event
            except Gone:
                log.info("watch compacted, re-listing", extra={"revision": self.revision})
                for out in await self._relist():
                    yield out
            except Transient as exc:
                log.warning("watch broke, resuming: %s", exc, extra={"revision": self.revision})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)

    def _batch(self, revision: int, changes: list[KeyChange], progress: bool) -> list[ObjectEvent]:
        """The events of one batch of changes (those up to the watch's revision are known)."""
        out = []
        for change in changes:
            if change.kv.mod_revision > self.revision and self._wants(*change.ident[:2]):
                event = self._apply(change)
                if event is not None:
                    out.append(event)
        if revision > self.revision:
            self.revision = revision
            if progress:
                out.append(ObjectEvent(BOOKMARK, None, revision))
        return out

    def _apply(self, change: KeyChange) -> ObjectEvent | None:
        kv, deleted, ident = change.kv, change.deleted, change.ident
        revision = kv.mod_revision
        entry = self._entries.get(ident)
        if change.part == "spec":
            if deleted:
                if entry is None:
                    return None
                del self._entries[ident]
                self._orphan_status.pop(ident, None)
                return _event(DELETED, entry, revision)
            if entry is not None and kv.mod_revision <= entry.spec.mod_revision:
                return None  # seen already (a resumed stream repeats nothing new)
            if entry is None:
                self._entries[ident] = _Entry(kv, self._orphan_status.pop(ident, None))
                return _event(ADDED, self._entries[ident], revision)
            entry.spec = kv
            return _event(MODIFIED, entry, revision)
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
            return _event(MODIFIED, entry, revision)
        if entry.status is not None and kv.mod_revision <= entry.status.mod_revision:
            return None
        entry.status = kv
        return _event(MODIFIED, entry, revision)

    async def _relist(self) -> list[ObjectEvent]:
        """After a compaction: read the present state and emit the differences."""
        self.relists += 1
        before = self._entries
        revision = await self._snapshot(0)
        out: list[ObjectEvent | None] = []
        for ident, old in before.items():
            if ident not in self._entries:
                out.append(_event(DELETED, old, revision))
        for ident, new in self._entries.items():
            old_entry = before.get(ident)
            if old_entry is not None:
                new.good = old_entry.good
            if old_entry is None:
                out.append(_event(ADDED, new, revision))
            elif _changed(old_entry, new):
                if old_entry.spec.create_revision != new.spec.create_revision:
                    # deleted and created again while we could not see it
                    out.append(_event(DELETED, old_entry, revision))
                    out.append(_event(ADDED, new, revision))
                else:
                    out.append(_event(MODIFIED, new, revision))
        self.revision = revision
        return [e for e in out if e is not None]


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
