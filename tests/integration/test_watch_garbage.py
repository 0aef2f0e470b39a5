"""A key that does not hold an object (written straight into etcd) ends no watch: it is
skipped, as if absent, and an object that turns into garbage and goes is still seen going."""

from __future__ import annotations

import asyncio

from state import keys
from state.envelope import Ref
from state.etcd import EtcdClient
from state.store import Store
from state.watch import ADDED, BOOKMARK, DELETED, MODIFIED, ObjectEvent, ObjectWatch


def flavor(name: str) -> dict:
    return {"kind": "Flavor", "metadata": {"name": name}, "spec": {"vcpus": 1}}


async def test_garbage_is_skipped_and_the_watch_goes_on(store: Store, etcd: EtcdClient) -> None:
    await store.create(flavor("good"))
    await etcd.put(keys.spec("Flavor", None, "garbage"), b"\xff{not json")
    events: asyncio.Queue[ObjectEvent] = asyncio.Queue()

    async def follow() -> None:
        async for ev in ObjectWatch(etcd, "Flavor"):
            await events.put(ev)

    task = asyncio.create_task(follow())
    try:

        async def next_event() -> tuple[str, str | None]:
            ev = await asyncio.wait_for(events.get(), 10)
            return ev.type, ev.object["metadata"]["name"] if ev.object else None

        assert await next_event() == (ADDED, "good")
        assert (await next_event())[0] == BOOKMARK
        await etcd.put(keys.spec("Flavor", None, "garbage2"), b'{"kind": 1}')
        await store.create(flavor("later"))
        assert await next_event() == (ADDED, "later")
        # an object overwritten with garbage: not delivered; deleted: its last good state goes
        await etcd.put(keys.spec("Flavor", None, "later"), b"null")
        await store.create(flavor("marker"))
        assert await next_event() == (ADDED, "marker")
        await etcd.delete(keys.spec("Flavor", None, "later"))
        assert await next_event() == (DELETED, "later")
        await store.delete(Ref("Flavor", None, "marker"))
        kind, name = await next_event()
        assert (kind, name) in {(MODIFIED, "marker"), (DELETED, "marker")}
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
