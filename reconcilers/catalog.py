"""The scheduler's read-through cache of Flavors and Images.

Owns: two informers (Flavor, Image) and lookups by name that answer from
their caches and, on a miss, from etcd (an object applied together with the
instance may not have reached the cache yet); handlers called when a flavor
or image appears or changes, so that instances waiting for one are looked at
again.

Must never: answer "not found" from the cache alone.
"""

from __future__ import annotations

from collections.abc import Callable

from reconcilers.runtime.informer import Informer
from state.envelope import Obj, Ref
from state.etcd import EtcdClient
from state.store import Store


class Catalog:
    def __init__(self, store: Store, etcd: EtcdClient) -> None:
        self.store = store
        self.flavors = Informer(etcd, "Flavor")
        self.images = Informer(etcd, "Image")

    @property
    def informers(self) -> list[Informer]:
        return [self.flavors, self.images]

    def on_change(self, handler: Callable[[], None]) -> None:
        """``handler()`` runs whenever a flavor or an image is added or changed."""
        for informer in self.informers:
            informer.add_handler(lambda _type, _obj: handler())

    async def _get(self, informer: Informer, r: Ref) -> Obj | None:
        return informer.get(r) or await self.store.get_or_none(r)

    async def flavor(self, name: str) -> Obj | None:
        return await self._get(self.flavors, Ref("Flavor", None, name))

    async def image(self, project: str, name: str) -> Obj | None:
        """The project's image of that name, else the public one (both caches first)."""
        own, public = Ref("Image", project, name), Ref("Image", None, name)
        cached = self.images.get(own) or self.images.get(public)
        if cached is not None:
            return cached
        found = await self.store.get_or_none(own)
        return found or await self.store.get_or_none(public)
