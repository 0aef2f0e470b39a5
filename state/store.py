"""The object store: desired's resources kept in etcd.

Owns: reading and writing whole objects (spec key + status key) with the
envelope's rules: uid and generation assigned here, optimistic concurrency on
``resourceVersion`` (the spec key's mod revision), deletion through
finalizers and ``deletionTimestamp``, status written through its own door,
consistent paged lists, and events.

Must never: validate specs against schemas (callers do), store a spec holding
text SQL cannot keep (``spec_bytes`` refuses it for every writer), hide a conflict, or
write a spec and a status in separate transactions when both change.

A spec key holds the envelope without ``status``. A status key holds
``{"uid": ..., "status": {...}}``; a status whose uid differs from the
spec's (left by an older object of the same name) is ignored on read.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import copy
import itertools
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.text import unstorable
from state import keys
from state.envelope import (
    API_VERSION,
    DEFAULT_FINALIZERS,
    Obj,
    Ref,
    finalizers,
    is_deleting,
    now,
    ref,
    resource_version,
)
from state.errors import AlreadyExists, BadRequest, Conflict, FieldError, Invalid, NotFound
from state.etcd import (
    Compare,
    Delete,
    EtcdClient,
    Get,
    KeyValue,
    Op,
    Put,
    TxnResult,
    absent,
    mod_revision_is,
    prefix_end,
)
from state.selectors import Selector

#: seconds an event is kept
_EVENT_TTL = 3600
#: how often a status read-modify-write is retried when another writer wins
_STATUS_RETRIES = 16
#: seconds a delete keeps re-reading and retrying while other writers win
_DELETE_PATIENCE = 30.0
#: attempts a delete retries at once before pausing between them
_DELETE_EAGER = 4


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def spec_bytes(obj: Obj) -> bytes:
    """The spec key's value for ``obj``; Invalid, naming each field, when a string in it
    is not storable text (``schemas.text``): etcd never holds what SQL cannot store."""
    data = dumps(obj)
    # ASCII-only JSON escapes every NUL, other control and non-ASCII character as \\u....,
    # and writes NaN and Infinity as such: without them, there is nothing to look at closer
    if (b"\\u" in data or b"NaN" in data or b"Infinity" in data) and (errors := unstorable(obj)):
        meta = obj.get("metadata") or {}
        raise Invalid(
            f"{obj.get('kind')} {meta.get('name')!r} is invalid",
            [FieldError(path, message) for path, message in errors],
        )
    return data


def decode_spec(kv: KeyValue) -> Obj:
    obj: Obj = json.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


def attach_status(obj: Obj, status_kv: KeyValue | None) -> Obj:
    """Puts the status stored in ``status_kv`` onto ``obj`` if it is this object's.

    The object's resourceVersion becomes the later of its spec's and its
    status's revisions: it moves with every change a watcher can see.
    """
    if status_kv is not None and status_kv.value:
        doc = json.loads(status_kv.value)
        if doc.get("uid") == obj["metadata"].get("uid"):
            obj["status"] = doc.get("status", {})
            rv = int(obj["metadata"]["resourceVersion"])
            obj["metadata"]["resourceVersion"] = str(max(rv, status_kv.mod_revision))
            return obj
    obj.setdefault("status", {})
    return obj


def spec_unchanged_since(spec_key: bytes, rv: int) -> list[Compare]:
    """True while the spec exists and was last written at or before revision ``rv``.

    A client that read an object at resourceVersion ``rv`` may replace its
    spec exactly when this holds: any later spec write has a higher revision,
    while status writes (another key) do not get in its way. The key must
    still exist: an absent key's mod revision is 0, and a stale write would
    otherwise bring a deleted object back (found by the state machine).
    """
    return [Compare(spec_key, "MOD", "LESS", rv + 1), Compare(spec_key, "VERSION", "GREATER", 0)]


@dataclass(frozen=True)
class ObjectList:
    items: list[Obj]
    #: the etcd revision the whole list was read at
    revision: int
    #: opaque token for the next page, or None on the last page
    continue_token: str | None = None


@dataclass
class _Page:
    start: bytes
    revision: int


def _encode_continue(page: _Page) -> str:
    raw = json.dumps({"k": base64.b64encode(page.start).decode(), "r": page.revision})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> _Page:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode()))
        return _Page(start=base64.b64decode(raw["k"]), revision=int(raw["r"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest(f"invalid continue token: {exc}") from None


@dataclass
class Store:
    """Objects over one etcd client. Cheap to create; caches nothing but its event lease."""

    etcd: EtcdClient
    #: returns new uids; replaceable so tests can make them predictable
    new_uid: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))
    _events_lease: tuple[int, float] = field(default=(0, 0.0), init=False, repr=False)
    #: the etcd revision of this store's latest object write: a reader of the conductor's
    #: SQL waits until SQL reflects it, so that a client reads its own writes
    written: int = field(default=0, init=False)

    # --- reads -------------------------------------------------------------

    async def get(self, r: Ref) -> Obj:
        obj = await self.get_or_none(r)
        if obj is None:
            raise NotFound(f"{r} not found")
        return obj

    async def get_or_none(self, r: Ref) -> Obj | None:
        spec_key = keys.spec(r.kind, r.project, r.name)
        res = await self.etcd.txn([], [Get(spec_key), Get(keys.status_for_spec(spec_key))])
        spec_kvs, status_kvs = res.responses
        if not spec_kvs:
            return None
        return attach_status(decode_spec(spec_kvs[0]), status_kvs[0] if status_kvs else None)

    async def list(
        self,
        kind: str,
        project: str | None = None,
        *,
        limit: int = 0,
        continue_token: str | None = None,
        selector: Selector | None = None,
    ) -> ObjectList:
        """Objects of one kind, in name order, all read at one revision.

        ``project=None`` lists every project. With ``limit``, pages are read at
        the revision of the first page, so paging never skips or repeats an
        object; a page whose revision was compacted raises ``Gone``.
        """
        prefix = keys.spec_prefix(kind, project)
        end = prefix_end(prefix)
        page = _decode_continue(continue_token) if continue_token else _Page(prefix, 0)
        if not page.start.startswith(prefix):
            raise BadRequest("continue token does not belong to this list")
        items: list[Obj] = []
        revision = page.revision
        start = page.start
        more = False
        batch = max(limit, 0) or 0
        while True:
            res = await self.etcd.range(start, end, limit=batch, revision=revision)
            revision = res.revision if not revision else revision
            if res.kvs:
                statuses = await self._statuses(res.kvs, revision)
                for kv in res.kvs:
                    obj = attach_status(decode_spec(kv), statuses.get(kv.key))
                    if selector is None or selector.matches(obj):
                        items.append(obj)
                        if limit and len(items) == limit:
                            start = kv.key + b"\0"
                            more = kv is not res.kvs[-1] or res.more
                            break
                else:
                    start = res.kvs[-1].key + b"\0"
                    more = res.more
            if (limit and len(items) == limit) or not res.more:
                break
        token = _encode_continue(_Page(start, revision)) if limit and more else None
        return ObjectList(items=items, revision=revision, continue_token=token)

    async def _statuses(self, spec_kvs: Sequence[KeyValue], revision: int) -> dict[bytes, KeyValue]:
        first = keys.status_for_spec(spec_kvs[0].key)
        last = keys.status_for_spec(spec_kvs[-1].key)
        res = await self.etcd.range(first, last + b"\0", revision=revision)
        return {keys.spec_for_status(kv.key): kv for kv in res.kvs}

    # --- spec writes ---------------------------------------------------------

    async def create(
        self, obj: Obj, *, extra: Sequence[tuple[Compare, Op]] = (), uid: str | None = None
    ) -> Obj:
        """Stores a new object; raises AlreadyExists if the name is taken.

        ``extra`` adds compares and puts to the same transaction (quota usage); if
        one of its compares fails, Conflict. ``uid``: the object's uid, when it mirrors
        something whose id it must keep (a new one otherwise)."""
        return (await self.create_many([obj], extra=extra, uids=[uid] if uid else None))[0]

    async def create_many(
        self,
        objs: Sequence[Obj],
        *,
        extra: Sequence[tuple[Compare, Op]] = (),
        uids: Sequence[str] | None = None,
    ) -> builtins.list[Obj]:
        """Stores new objects in one transaction: all of them or none. AlreadyExists
        (naming the first) if a name is taken; Conflict if a compare of ``extra`` fails.
        ``uids``: the objects' uids, when they must keep given ones."""
        refs = [ref(o) for o in objs]
        given = list(uids) if uids is not None else [None] * len(objs)
        stored = [self.prepare_new(o, u) for o, u in zip(objs, given, strict=True)]
        spec_keys = [keys.spec(r.kind, r.project, r.name) for r in refs]
        res = await self.etcd.txn(
            [*(absent(k) for k in spec_keys), *(c for c, _ in extra)],
            [
                *(Put(k, spec_bytes(s)) for k, s in zip(spec_keys, stored, strict=True)),
                *(op for _, op in extra),
            ],
            [Get(k) for k in spec_keys] if extra or len(objs) > 1 else [],
        )
        if not res.succeeded:
            taken = [r for r, kvs in zip(refs, res.responses, strict=False) if kvs]
            if taken or not res.responses:
                raise AlreadyExists(f"{(taken or refs)[0]} already exists")
            raise Conflict(f"{refs[0]}: what its create is accounted in changed meanwhile")
        for s in stored:
            s["metadata"]["resourceVersion"] = str(res.revision)
            s["status"] = {}
        self.written = max(self.written, res.revision)
        return stored

    async def create_or_get(self, obj: Obj) -> tuple[Obj, bool]:
        """Creates ``obj``, or returns the live object of that name: (object, created).

        One etcd transaction either way, so that applying new objects costs a
        single round trip.
        """
        r = ref(obj)
        stored = self.prepare_new(obj)
        spec_key = keys.spec(r.kind, r.project, r.name)
        res = await self.etcd.txn(
            [absent(spec_key)],
            [Put(spec_key, spec_bytes(stored))],
            [Get(spec_key), Get(keys.status_for_spec(spec_key))],
        )
        if res.succeeded:
            stored["metadata"]["resourceVersion"] = str(res.revision)
            self.written = max(self.written, res.revision)
            stored["status"] = {}
            return stored, True
        spec_kvs, status_kvs = res.responses
        if not spec_kvs:  # deleted between the compare and the read: cannot happen in one txn
            raise Conflict(f"{r} changed during create; retry")
        return attach_status(decode_spec(spec_kvs[0]), status_kvs[0] if status_kvs else None), False

    def prepare_new(self, obj: Obj, uid: str | None = None) -> Obj:
        """The spec-key document of a new object: server fields set (``uid`` when given),
        status dropped."""
        r = ref(obj)
        stored = {k: v for k, v in obj.items() if k != "status"}
        stored["apiVersion"] = obj.get("apiVersion") or API_VERSION
        m = dict(obj["metadata"])
        for k in ("resourceVersion", "deletionTimestamp"):
            m.pop(k, None)
        m["uid"] = uid or self.new_uid()
        m["generation"] = 1
        m["creationTimestamp"] = now()
        defaults = DEFAULT_FINALIZERS.get(r.kind, ())
        if defaults:
            m["finalizers"] = [*(m.get("finalizers") or []), *defaults]
        if r.project is None:
            m.pop("project", None)
        stored["metadata"] = m
        stored.setdefault("spec", {})
        return stored

    async def update(
        self, obj: Obj, *, current: Obj | None = None, extra: Sequence[tuple[Compare, Op]] = ()
    ) -> Obj | None:
        """Replaces an object's spec and metadata if its resourceVersion still matches.

        Server fields (uid, creationTimestamp) are kept from the stored copy;
        generation is bumped when the spec changed. An update that leaves a
        deleting object with no finalizers removes it (and returns None).
        ``extra`` adds compares and puts to the same transaction (quota usage).
        ``current``, the live object the caller just read, saves a read.
        """
        r = ref(obj)
        rv = resource_version(obj)
        if not rv:
            raise Conflict(f"{r}: metadata.resourceVersion is required for an update")
        if current is None or resource_version(current) < rv:
            current = await self.get(r)
        stored = self.prepare_update(current, obj)
        return await self._write(r, rv, stored, extra)

    @staticmethod
    def prepare_update(current: Obj, obj: Obj) -> Obj:
        """The spec-key document replacing ``current`` with ``obj``'s spec and metadata."""
        old_meta = current["metadata"]
        stored = {k: v for k, v in obj.items() if k != "status"}
        stored["apiVersion"] = current.get("apiVersion", API_VERSION)
        m = dict(obj.get("metadata", {}))
        for k in ("uid", "creationTimestamp", "generation", "project"):
            if k in old_meta:
                m[k] = old_meta[k]
            else:
                m.pop(k, None)
        # deletionTimestamp can be set by delete() only, and never cleared
        if old_meta.get("deletionTimestamp"):
            m["deletionTimestamp"] = old_meta["deletionTimestamp"]
        elif "deletionTimestamp" in m and not m["deletionTimestamp"]:
            m.pop("deletionTimestamp")
        if stored.get("spec", {}) != current.get("spec", {}):
            if old_meta.get("deletionTimestamp"):
                raise Conflict(f"{ref(current)} is being deleted; its spec can no longer change")
            m["generation"] = int(old_meta.get("generation", 1)) + 1
        m.pop("resourceVersion", None)
        stored["metadata"] = m
        stored.setdefault("spec", {})
        return stored

    async def _write(
        self, r: Ref, rv: int, stored: Obj, extra: Sequence[tuple[Compare, Op]] = ()
    ) -> Obj | None:
        spec_key = keys.spec(r.kind, r.project, r.name)
        compares = [*spec_unchanged_since(spec_key, rv), *(c for c, _ in extra)]
        extra_ops = [op for _, op in extra]
        gone = is_deleting(stored) and not finalizers(stored)
        ops: list[Op]
        if gone:
            ops = [Delete(spec_key), Delete(keys.status_for_spec(spec_key)), *extra_ops]
        else:
            ops = [
                Put(spec_key, spec_bytes(stored)),
                *extra_ops,
                Get(keys.status_for_spec(spec_key)),
            ]
        res = await self.etcd.txn(compares, ops)
        if not res.succeeded:
            raise Conflict(f"{r} was modified since resourceVersion {rv}; read it again and retry")
        self.written = max(self.written, res.revision)
        if gone:
            return None
        stored["metadata"]["resourceVersion"] = str(res.revision)
        status_kvs = res.responses[-1]
        return attach_status(stored, status_kvs[0] if status_kvs else None)

    async def delete(
        self,
        r: Ref,
        *,
        resource_version_: int = 0,
        extra_for: Callable[[Obj], Awaitable[Sequence[tuple[Compare, Op]]]] | None = None,
    ) -> Obj | None:
        """Deletes an object, or marks it deleting while finalizers remain.

        Returns the object marked with ``deletionTimestamp``, or None once it
        is gone. Deleting an object that is already deleting changes nothing.
        With ``resource_version_`` the delete is refused (Conflict) if the spec
        changed since. Without it a delete always wins: a concurrent change (a
        reconciler adding a finalizer, another writer moving the project's
        usage) makes it re-read and try again, at once and then with a short
        jittered pause, for up to ``_DELETE_PATIENCE`` seconds.
        ``extra_for(current)`` gives the compares and ops that join the
        transaction marking (or removing) the object (quota usage); it is
        called again on each fresh read, so they never go stale.
        """
        deadline = time.monotonic() + _DELETE_PATIENCE
        for attempt in itertools.count():
            current = await self.get(r)
            if is_deleting(current):
                return current
            rv = resource_version_ or resource_version(current)
            stored = {k: v for k, v in current.items() if k != "status"}
            stored["metadata"] = dict(current["metadata"], deletionTimestamp=now())
            stored["metadata"].pop("resourceVersion", None)
            extra = await extra_for(current) if extra_for is not None else ()
            try:
                return await self._write(r, rv, stored, extra)
            except Conflict:
                if resource_version_ or time.monotonic() > deadline:
                    raise
            if attempt >= _DELETE_EAGER:
                await asyncio.sleep(
                    random.uniform(0, min(0.002 * 2 ** (attempt - _DELETE_EAGER), 0.05))
                )
        raise AssertionError("unreachable")

    async def remove_finalizer(self, r: Ref, name: str) -> Obj | None:
        """Drops one finalizer, re-reading on conflict.

        Removing the last finalizer of a deleting object deletes it.
        """
        for _ in range(_STATUS_RETRIES):
            current = await self.get_or_none(r)
            if current is None or name not in finalizers(current):
                return current
            current["metadata"]["finalizers"] = [f for f in finalizers(current) if f != name]
            try:
                return await self.update(current)
            except Conflict:
                continue
        raise Conflict(f"{r}: could not remove finalizer {name} (too much contention)")

    # --- status --------------------------------------------------------------

    async def patch_status(
        self,
        r: Ref,
        mutate: Callable[[dict[str, Any]], bool],
        *,
        uid: str | None = None,
        current: Obj | None = None,
        compares: Sequence[Compare] = (),
        ops: Sequence[Op] = (),
    ) -> Obj | None:
        """Read-modify-write of an object's status through its own door.

        ``mutate`` edits the status dict in place and returns whether it changed
        anything; nothing is written when it did not. Another writer winning
        the race makes this re-apply at once on what it wrote (read in the same
        round trip as the failed write). Returns the object, or None if it no
        longer exists (or, with ``uid``, is another object).

        ``current`` is the object as the caller read it (with its resourceVersion):
        the first attempt writes on it without reading again.

        ``compares`` and ``ops`` join the same transaction (the scheduler's
        allocation and assignment): the status is then written even if it did
        not change, tried once, and a failed compare raises Conflict.
        """
        spec_key = keys.spec(r.kind, r.project, r.name)
        status_key = keys.status_for_spec(spec_key)
        read = [Get(spec_key), Get(status_key)]
        responses: list[list[KeyValue] | None] | None = None
        for _ in range(1 if compares or ops else _STATUS_RETRIES):
            if current is not None:
                obj = copy.deepcopy(current)
                rv = resource_version(obj)
                guards = [
                    *spec_unchanged_since(spec_key, rv),
                    Compare(status_key, "MOD", "LESS", rv + 1),
                ]
                current = None
            else:
                if responses is None:
                    responses = (await self.etcd.txn([], read)).responses
                spec_kvs, status_kvs = responses[0] or [], responses[1] or []
                if not spec_kvs:
                    return None
                obj = decode_spec(spec_kvs[0])
                status_kv = status_kvs[0] if status_kvs else None
                attach_status(obj, status_kv)
                guards = [
                    mod_revision_is(status_key, status_kv.mod_revision)
                    if status_kv is not None
                    else absent(status_key),
                    mod_revision_is(spec_key, spec_kvs[0].mod_revision),
                ]
            if uid is not None and obj["metadata"].get("uid") != uid:
                return None
            if not mutate(obj["status"]) and not (compares or ops):
                return obj
            body = dumps({"uid": obj["metadata"]["uid"], "status": obj["status"]})
            w = await self.etcd.txn([*guards, *compares], [Put(status_key, body), *ops], read)
            if w.succeeded:
                obj["metadata"]["resourceVersion"] = str(w.revision)
                self.written = max(self.written, w.revision)
                return obj
            responses = w.responses
        raise Conflict(f"{r}: status kept changing under {_STATUS_RETRIES} attempts")

    def status_write(self, obj: Obj, status: dict[str, Any]) -> tuple[builtins.list[Compare], Put]:
        """The compares and the put that write ``status`` for ``obj`` as it was read: they
        hold while neither its spec nor its status changed since (for a caller that
        joins the write to a transaction of its own, as the scheduler's placement)."""
        r = ref(obj)
        spec_key = keys.spec(r.kind, r.project, r.name)
        status_key = keys.status_for_spec(spec_key)
        rv = resource_version(obj)
        compares = [*spec_unchanged_since(spec_key, rv), Compare(status_key, "MOD", "LESS", rv + 1)]
        body = dumps({"uid": obj["metadata"]["uid"], "status": status})
        return compares, Put(status_key, body)

    # --- events ----------------------------------------------------------------

    async def _event_lease(self) -> int:
        """A lease for events, shared by this store; events live 50 to 60 minutes."""
        lease, expires = self._events_lease
        if not lease or expires - time.monotonic() < _EVENT_TTL / 6:
            lease = await self.etcd.lease_grant(_EVENT_TTL)
            self._events_lease = (lease, time.monotonic() + _EVENT_TTL)
        return lease

    async def record_event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Records an event about ``obj`` that users read with ``desiredctl describe``."""
        r = ref(obj)
        stamp = now()
        ident = uuid.uuid4().hex[:8]
        event = {
            "involvedObject": {
                "kind": r.kind,
                "project": r.project,
                "name": r.name,
                "uid": obj["metadata"].get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "timestamp": stamp,
        }
        lease = await self._event_lease()
        await self.etcd.put(keys.event(r.project, stamp, ident), dumps(event), lease=lease)

    async def events_for(self, r: Ref, uid: str | None = None) -> builtins.list[dict[str, Any]]:
        prefix = keys.events_prefix(r.project)
        res = await self.etcd.range(prefix, prefix_end(prefix))
        out = []
        for kv in res.kvs:
            ev = json.loads(kv.value)
            inv = ev.get("involvedObject", {})
            if (inv.get("kind"), inv.get("name")) == (r.kind, r.name) and (
                uid is None or inv.get("uid") == uid
            ):
                out.append(ev)
        return out

    # --- raw access for reconcilers ----------------------------------------------

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        return await self.etcd.txn(compare, success, failure)
