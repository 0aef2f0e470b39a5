"""Objects SQL refuses, written straight into etcd, neither stop the conductor nor keep other
objects out of SQL: each is reported (an event on it, a metric) and skipped, on SQLite and
PostgreSQL, in the first full list and in the stream, and at every restart."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from reconcilers.conductor import Conductor
from state import keys
from state.envelope import Ref, now
from state.etcd import EtcdClient
from state.sql.migrate import upgrade
from state.sql.projection import Projection
from state.store import Store, dumps
from tests.conftest import eventually


def vm(name: str) -> dict:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "project": "demo"},
        "spec": {"flavor": "small", "image": "tiny"},
    }


async def put_raw(etcd: EtcdClient, key_name: str, obj: dict) -> dict:
    """``obj`` written into etcd as no API would let it: under the key of ``key_name``."""
    meta = obj["metadata"]
    meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=now())
    await etcd.put(keys.spec("Instance", "demo", key_name), dumps(obj))
    return obj


@contextlib.asynccontextmanager
async def conductor(etcd: EtcdClient, url: str) -> AsyncIterator[Conductor]:
    c = Conductor(etcd, url)
    task = asyncio.create_task(c.run())
    synced = asyncio.create_task(c.synced.wait())
    try:
        await asyncio.wait({task, synced}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the conductor stopped: say why
        assert c.synced.is_set(), "the conductor did not sync in 20 s"
        yield c
    finally:
        synced.cancel()
        task.cancel()
        await asyncio.gather(task, synced, return_exceptions=True)


def refusals(c: Conductor) -> float:
    return sum(
        s.value
        for m in c.metrics.registry.collect()
        if m.name == "desired_reconcile_errors"
        for s in m.samples
        if s.name.endswith("_total") and s.labels["controller"] == "conductor"
    )


async def test_refused_objects_are_reported_and_skipped(
    store: Store, etcd: EtcdClient, sql_url: str
) -> None:
    upgrade(sql_url)
    view = Projection(sql_url)
    postgres = sql_url.startswith("postgresql")
    await store.create(vm("before"))
    poison = [
        await put_raw(etcd, "surrogate-name", vm("fz\ud800x")),
        await put_raw(
            etcd, "surrogate-image", {**vm("surrogate-image"), "spec": {"image": "\udc80"}}
        ),
    ]
    poison.append(
        await put_raw(etcd, "odd-types", {**vm("odd-types"), "spec": {"flavor": {"a": 1}}})
    )
    if postgres:  # SQLite stores a NUL; PostgreSQL refuses it
        poison.append(await put_raw(etcd, "nul-name", vm("nul\0name")))
    # not objects at all: skipped by the watch (logged), as if absent
    await etcd.put(keys.spec("Instance", "demo", "not-json"), b"{not json")
    await etcd.put(keys.spec("Instance", "demo", "a-list"), b"[1, 2]")
    await etcd.put(keys.spec("Instance", "demo", "no-meta"), b'{"kind": "Instance"}')

    async def names() -> set[str]:
        return {r.name for r in await asyncio.to_thread(view.rows, "Instance")}

    async def reported(obj: dict) -> bool:
        events = await store.events_for(Ref("Instance", "demo", obj["metadata"]["name"]))
        assert [e["reason"] for e in events].count("ProjectionFailed") >= 1, events
        return True

    async with conductor(etcd, sql_url) as c:  # the first full list holds the poison
        assert await names() == {"before"}
        for obj in poison:
            await eventually(lambda obj=obj: reported(obj))
        assert refusals(c) >= len(poison)
        # in the stream: a batch with a refused object in it writes every other one
        created = [await store.create(vm(f"vm{i}")) for i in range(5)]
        late = await put_raw(etcd, "late", vm("late\ud800"))
        created.append(await store.create(vm("after")))
        rv = int(created[-1]["metadata"]["resourceVersion"])

        async def caught_up() -> bool:
            return await asyncio.to_thread(view.progress) >= rv

        await eventually(caught_up)
        assert await names() == {"before", "after", *(f"vm{i}" for i in range(5))}
        await eventually(lambda: reported(late))
        # the progress moved past the refused object: a later write is projected alone
        await store.patch_status(
            Ref("Instance", "demo", "vm0"), lambda s: s.update(vmState="active") or True
        )
        await eventually(lambda: status_of(view, "vm0"))
    # a restart on the same data starts and serves
    await store.create(vm("while-away"))
    async with conductor(etcd, sql_url):
        assert "while-away" in await names()
    view.close()


async def status_of(view: Projection, name: str) -> bool:
    rows = {r.name: r for r in await asyncio.to_thread(view.rows, "Instance")}
    return rows[name].status == {"vmState": "active"}
