"""Informers: list + watch + cache of one kind, with handlers.

Owns: a cache of the latest state of every object of one kind (in one
project or all), kept by an ``ObjectWatch`` that resumes and re-lists by
itself; ``synced`` once the initial list is in; handlers called with every
change (typically to enqueue a key).

Must never: call a handler with an object older than the cache holds, or
block the loop in a handler.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable

from state.envelope import Obj, Ref, ref
from state.etcd import EtcdClient
from state.watch import BOOKMARK, DELETED, ObjectWatch

log = logging.getLogger(__name__)

Handler = Callable[[str, Obj], None]


class Informer:
    def __init__(self, etcd: EtcdClient, kind: str, project: str | None = None) -> None:
        self.etcd = etcd
        self.kind = kind
        self.project = project
        self.synced = asyncio.Event()
        self.revision = 0
        self._cache: dict[Ref, Obj] = {}
        self._handlers: list[Handler] = []

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def get(self, r: Ref) -> Obj | None:
        return self._cache.get(r)

    def list(self) -> list[Obj]:
        return list(self._cache.values())

    def keys(self) -> builtins.list[Ref]:
        return list(self._cache)

    async def run(self) -> None:
        """Runs until cancelled."""
        watch = ObjectWatch(self.etcd, self.kind, self.project)
        async for event in watch:
            self.revision = event.revision
            if event.type == BOOKMARK:
                self.synced.set()
                continue
            assert event.object is not None
            r = ref(event.object)
            if event.type == DELETED:
                self._cache.pop(r, None)
            else:
                self._cache[r] = event.object
            for handler in self._handlers:
                try:
                    handler(event.type, event.object)
                except Exception:
                    log.exception("informer handler failed", extra={"kind": self.kind})
