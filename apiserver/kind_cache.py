"""Every object of one cluster-scoped kind, as a watch keeps them, for checks on every request.

Owns: following one kind (``state.watch.ObjectWatch``: list, then changes;
again from the start while etcd is away) into a dict of name -> what a
``view`` function makes of each object; until the first list is whole, a
look-up reads the object from etcd instead, so that a check is never
answered from a half-listed cache.

Must never: answer from a cache that missed a deletion (the list replaces
it whole); write anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from state.envelope import Obj, Ref
from state.errors import DesiredError
from state.store import Store
from state.watch import ADDED, BOOKMARK, DELETED, MODIFIED, ObjectWatch

T = TypeVar("T")


class KindCache(Generic[T]):
    """The objects of ``kind`` by name, each as ``view`` makes it; see the module docstring."""

    def __init__(self, store: Store, kind: str, view: Callable[[Obj], T]) -> None:
        self.store = store
        self.kind = kind
        self.view = view
        self.items: dict[str, T] = {}
        #: set once the watch has listed every object
        self.synced = asyncio.Event()

    async def follow(self) -> None:
        """Keeps ``items`` equal to etcd's objects until cancelled, retrying while etcd is
        away."""
        while True:
            try:
                seen: dict[str, T] = {}
                listing = True
                async for ev in ObjectWatch(self.store.etcd, self.kind):
                    if ev.type == BOOKMARK:
                        if listing:  # the whole list is in: objects missing from it are gone
                            self.items, listing = seen, False
                            self.synced.set()
                        continue
                    if ev.object is None:
                        continue
                    name = str(ev.object["metadata"]["name"])
                    into = seen if listing else self.items
                    if ev.type == DELETED:
                        into.pop(name, None)
                    elif ev.type in (ADDED, MODIFIED):
                        into[name] = self.view(ev.object)
            except DesiredError:
                await asyncio.sleep(1.0)

    async def get(self, name: str) -> T | None:
        """What ``view`` made of the object ``name``, or None when there is none."""
        if self.synced.is_set():
            return self.items.get(name)
        obj = await self.store.get_or_none(Ref(self.kind, None, name))
        return self.view(obj) if obj is not None else None
