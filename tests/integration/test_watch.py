"""Object watches against a real etcd: initial state, resume after restart, re-list after compaction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from fixtures.etcd import EtcdServer
from state.envelope import Ref
from state.errors import Gone
from state.etcd import EtcdClient, Put, prefix_end
from state.store import Store
from state.watch import ADDED, BOOKMARK, DELETED, MODIFIED, ObjectEvent, ObjectWatch
from tests.conftest import eventually


def inst(name: str, project: str = "demo") -> dict:
    """An object of a kind without default finalizers: a delete removes it at once."""
    return {
        "kind": "KeyPair",
        "metadata": {"name": name, "project": project},
        "spec": {"flavor": "m1.tiny", "image": "tiny"},
    }


class Collector:
    """Runs a watch in a task and keeps what it delivers."""

    def __init__(self, watch: ObjectWatch) -> None:
        self.watch = watch
        self.events: list[ObjectEvent] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for ev in self.watch:
            self.events.append(ev)

    def seen(self, type_: str | None = None) -> list[tuple[str, str, str]]:
        return [
            (e.type, e.object["metadata"]["name"], e.object["metadata"]["resourceVersion"])
            for e in self.events
            if e.object is not None and (type_ is None or e.type == type_)
        ]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def collecting(watch: ObjectWatch) -> AsyncIterator[Collector]:
    c = Collector(watch)
    try:
        yield c
    finally:
        await c.stop()


async def test_initial_state_then_changes(store: Store, etcd: EtcdClient) -> None:
    await store.create(inst("a"))
    await store.create(inst("other", project="p2"))
    async with collecting(ObjectWatch(etcd, "KeyPair", "demo")) as c:
        await eventually(lambda: _has(c, BOOKMARK))
        assert [t for t, *_ in c.seen()] == [ADDED]
        await store.create(inst("b"))
        await store.patch_status(Ref("KeyPair", "demo", "b"), lambda s: s.update(x=1) or True)
        await store.delete(Ref("KeyPair", "demo", "a"))
        await store.create(inst("c", project="p2"))  # another project: not delivered

        async def done() -> bool:
            return [(t, n) for t, n, _ in c.seen()] == [
                (ADDED, "a"),
                (ADDED, "b"),
                (MODIFIED, "b"),
                (DELETED, "a"),
            ]

        await eventually(done)
        modified = next(e for e in c.events if e.type == MODIFIED)
        assert modified.object is not None and modified.object["status"] == {"x": 1}


async def _has(c: Collector, type_: str) -> bool:
    return any(e.type == type_ for e in c.events)


async def test_watch_from_revision_sends_only_later_changes(store: Store, etcd: EtcdClient) -> None:
    first = await store.create(inst("a"))
    rv = int(first["metadata"]["resourceVersion"])
    await store.create(inst("b"))
    async with collecting(ObjectWatch(etcd, "KeyPair", revision=rv)) as c:
        await eventually(lambda: _named(c, "b"))
        assert c.seen() == [(ADDED, "b", c.seen()[0][2])]


async def _named(c: Collector, name: str) -> bool:
    return any(n == name for _, n, _ in c.seen())


async def test_watch_from_compacted_revision_is_gone(store: Store, etcd: EtcdClient) -> None:
    first = await store.create(inst("a"))
    await store.create(inst("b"))
    await etcd.compact(await etcd.revision())
    with pytest.raises(Gone):
        async for _ in ObjectWatch(
            etcd, "KeyPair", revision=int(first["metadata"]["resourceVersion"])
        ):
            pass


async def test_watch_resumes_across_etcd_restart_without_loss_or_duplicates(
    fresh_etcd: EtcdServer,
) -> None:
    client = fresh_etcd.client(timeout=2)
    store = Store(client)
    watch = ObjectWatch(client, "KeyPair", retry_delay=0.05, max_retry_delay=0.2)
    async with collecting(watch) as c:
        await eventually(lambda: _has(c, BOOKMARK))
        for i in range(5):
            await store.create(inst(f"before{i}"))
        await eventually(lambda: _count(c, 5))
        fresh_etcd.kill()
        await asyncio.sleep(0.3)
        fresh_etcd.start()
        for i in range(5):
            await store.create(inst(f"after{i}"))
        await eventually(lambda: _count(c, 10), timeout=20)
        await asyncio.sleep(0.3)
        names = [n for _, n, _ in c.seen()]
        assert sorted(names) == sorted(
            [f"before{i}" for i in range(5)] + [f"after{i}" for i in range(5)]
        )
    await client.close()


async def _count(c: Collector, n: int) -> bool:
    return len(c.seen()) >= n


async def _change_the_world(store: Store) -> str:
    """Changes, deletes and re-creates KeyPairs made by ``_four``; returns the re-created
    one's old uid."""
    await store.patch_status(Ref("KeyPair", "demo", "change"), lambda s: s.update(v=2) or True)
    await store.delete(Ref("KeyPair", "demo", "remove"))
    old_uid = (await store.get(Ref("KeyPair", "demo", "recreate")))["metadata"]["uid"]
    await store.delete(Ref("KeyPair", "demo", "recreate"))
    await store.create(inst("recreate"))
    await store.create(inst("new"))
    return str(old_uid)


async def _four(store: Store) -> None:
    for name in ("keep", "change", "remove", "recreate"):
        await store.create(inst(name))


def _exact_differences(events: list[ObjectEvent], old_uid: str) -> None:
    got = sorted((e.type, e.object["metadata"]["name"]) for e in events if e.object)
    assert got == sorted(
        [
            (MODIFIED, "change"),
            (DELETED, "remove"),
            (DELETED, "recreate"),
            (ADDED, "recreate"),
            (ADDED, "new"),
        ]
    )
    deleted = [
        e for e in events if e.type == DELETED and e.object["metadata"]["name"] == "recreate"
    ]
    assert deleted[0].object["metadata"]["uid"] == old_uid


async def test_relist_after_compaction_emits_exact_differences(
    store: Store, etcd: EtcdClient
) -> None:
    """Objects change and the history is compacted before a watch from a revision opens
    its stream.

    The watch cannot resume from its revision; it re-lists and emits exactly
    one event per object that differs from what it had seen.
    """
    await _four(store)
    watch = ObjectWatch(etcd, "KeyPair", revision=await etcd.revision())
    stream = watch.__aiter__()
    assert (await anext(stream)).type == BOOKMARK
    # the watch is parked at its bookmark: change the world and compact under it
    old_uid = await _change_the_world(store)
    await etcd.compact(await etcd.revision())
    events = [await asyncio.wait_for(anext(stream), 5) for _ in range(5)]
    assert watch.relists == 1
    _exact_differences(events, old_uid)
    assert {o["metadata"]["name"] for o in watch.cached()} == {"keep", "change", "recreate", "new"}
    # and it goes on watching from the re-listed revision
    await store.create(inst("later"))
    nxt = await asyncio.wait_for(anext(stream), 5)
    assert (nxt.type, nxt.object["metadata"]["name"]) == (ADDED, "later")
    await stream.aclose()


async def test_watches_sharing_a_stream_relist_when_it_resumes_after_compaction(
    fresh_etcd: EtcdServer,
) -> None:
    """The watches of one client share one etcd stream. It breaks (etcd restarts), and
    before it resumes the history it needs is compacted: each of them re-lists and emits
    exactly the differences, then goes on from there."""
    client = fresh_etcd.client(timeout=2)
    other = fresh_etcd.client(timeout=2)
    store = Store(other)
    await _four(store)
    # the first watch of the client sets the shared stream's delay before it resumes
    watches = [ObjectWatch(client, "KeyPair", retry_delay=3.0, max_retry_delay=3.0)]
    watches.append(ObjectWatch(client, "KeyPair", "demo"))
    streams = [w.__aiter__() for w in watches]
    for stream in streams:
        initial = [await anext(stream) for _ in range(5)]
        assert [e.type for e in initial] == [ADDED] * 4 + [BOOKMARK]
    await store.create(inst("seen"))  # the stream is up and delivers
    for stream in streams:
        assert (await asyncio.wait_for(anext(stream), 5)).object["metadata"]["name"] == "seen"
    fresh_etcd.kill()
    fresh_etcd.start()
    old_uid = await _change_the_world(store)
    await other.compact(await other.revision())
    for watch, stream in zip(watches, streams, strict=True):
        events = [await asyncio.wait_for(anext(stream), 10) for _ in range(5)]
        assert watch.relists == 1
        _exact_differences(events, old_uid)
    await store.create(inst("later"))
    for stream in streams:
        nxt = await asyncio.wait_for(anext(stream), 5)
        assert (nxt.type, nxt.object["metadata"]["name"]) == (ADDED, "later")
        await stream.aclose()
    await client.close()
    await other.close()


async def test_a_watch_response_longer_than_a_line_limit_is_delivered(
    store: Store, etcd: EtcdClient
) -> None:
    """etcd folds all events of one transaction into one line of the watch stream."""
    async with collecting(ObjectWatch(etcd, "KeyPair")) as c:
        await eventually(lambda: _has(c, BOOKMARK))
        objs = [
            store.prepare_new(dict(inst(f"big{i:03d}"), spec={"flavor": "x" * 4000, "image": "i"}))
            for i in range(100)
        ]
        from state import keys
        from state.store import dumps

        ops = [Put(keys.spec("KeyPair", "demo", o["metadata"]["name"]), dumps(o)) for o in objs]
        res = await etcd.txn([], ops)
        assert res.succeeded
        await eventually(lambda: _count(c, 100))
        assert len(c.seen(ADDED)) == 100


async def test_hundreds_of_watch_streams_on_one_client_all_deliver(etcd: EtcdClient) -> None:
    """hostd runs one watch stream per simulated host on one client: none may starve."""
    client = EtcdClient(etcd.url, credentials=etcd.credentials)
    start = await client.revision() + 1
    keys = [f"/test/streams/{i:04d}".encode() for i in range(300)]

    async def first(key: bytes) -> bytes:
        async for batch in client.watch(key, None, start):
            if batch.events:
                return batch.events[0].kv.value
        raise AssertionError("the watch ended")

    watches = [asyncio.create_task(first(k)) for k in keys]
    try:
        for i in range(0, len(keys), 100):  # etcd takes at most 128 operations per txn
            await client.txn([], [Put(k, k[-4:]) for k in keys[i : i + 100]])
        values = await asyncio.wait_for(asyncio.gather(*watches), 60)
        assert values == [k[-4:] for k in keys]
    finally:
        for w in watches:
            w.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        await client.delete(b"/test/streams/", prefix_end(b"/test/streams/"))
        await client.close()
