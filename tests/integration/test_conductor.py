"""The conductor projects etcd into SQLite and PostgreSQL, exactly, across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

from reconcilers.conductor import Conductor
from state.envelope import Ref
from state.etcd import EtcdClient
from state.sql.migrate import upgrade
from state.sql.projection import Projection
from state.store import Store
from tests.conftest import eventually


def vm(name: str) -> dict:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "project": "demo", "labels": {"app": "web"}},
        "spec": {"flavor": "small", "image": "tiny"},
    }


@contextlib.asynccontextmanager
async def conductor(etcd: EtcdClient, url: str) -> AsyncIterator[Conductor]:
    c = Conductor(etcd, url)
    task = asyncio.create_task(c.run())
    try:
        await asyncio.wait_for(c.synced.wait(), 10)
        yield c
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def matches(store: Store, view: Projection) -> bool:
    live = {o["metadata"]["uid"]: o for o in (await store.list("Instance")).items}
    rows = {r.uid: r for r in await asyncio.to_thread(view.rows, "Instance")}
    assert set(rows) == set(live)
    for uid, obj in live.items():
        row = rows[uid]
        assert (row.name, row.project, row.resource_version) == (
            obj["metadata"]["name"],
            "demo",
            int(obj["metadata"]["resourceVersion"]),
        )
        assert (
            row.spec == obj["spec"] and row.status == obj["status"] and row.labels == {"app": "web"}
        )
        created = dt.datetime.fromisoformat(obj["metadata"]["creationTimestamp"])
        assert _utc(row.created_at) == created and row.deleted_at is None
    return True


def _utc(stamp: dt.datetime) -> dt.datetime:
    """SQLite gives back the UTC time without its zone, PostgreSQL with it."""
    return stamp.astimezone(dt.UTC) if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


async def test_projection_follows_etcd_and_survives_restarts(
    store: Store, etcd: EtcdClient, sql_url: str
) -> None:
    upgrade(sql_url)
    view = Projection(sql_url)
    await store.create(vm("before"))
    async with conductor(etcd, sql_url):
        await eventually(lambda: matches(store, view))
        for i in range(20):
            await store.create(vm(f"vm{i:02d}"))
        await store.patch_status(
            Ref("Instance", "demo", "vm03"), lambda s: s.update(vmState="active") or True
        )
        await store.delete(Ref("Instance", "demo", "vm04"))
        await eventually(lambda: matches(store, view))
        # read your writes: once progress reaches a write's revision, SQL shows it
        created = await store.create(vm("mine"))
        rv = int(created["metadata"]["resourceVersion"])

        async def caught_up() -> bool:
            return await asyncio.to_thread(view.progress) >= rv

        await eventually(caught_up)
        assert "mine" in {r.name for r in await asyncio.to_thread(view.rows, "Instance")}
    # changes while the conductor is away are found at its next start
    await store.delete(Ref("Instance", "demo", "vm05"))
    await store.create(vm("while-away"))
    async with conductor(etcd, sql_url):
        await eventually(lambda: matches(store, view))
    view.close()
