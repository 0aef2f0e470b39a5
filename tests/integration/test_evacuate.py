"""A host whose lease expires: its instances are marked DOWN, and move only when an admin asks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from reconcilers import wiring
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.manager import Manager
from state import keys
from state.envelope import condition
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_hostd import VM, flavor_and_image, set_spec, sim_agent


async def test_dead_host_marks_its_instances_and_evacuation_moves_them(
    store: Store, tmp_path: Path
) -> None:
    await flavor_and_image(store)
    first = sim_agent(store, tmp_path, "h1", lease_ttl=3)
    first_task = asyncio.create_task(first.run())
    await eventually(lambda: store.etcd.get(keys.alive("h1")))
    informer = Informer(store.etcd, "Instance")
    scheduler, needs = wiring.scheduler(store, informer)
    manager = asyncio.create_task(Manager([informer, *needs], [scheduler]).run())
    second = sim_agent(store, tmp_path, "h2", lease_ttl=3)
    second_task: asyncio.Task[None] | None = None
    try:
        await store.create(
            {
                "kind": "Instance",
                "metadata": {"name": "vm", "project": "demo"},
                "spec": {"flavor": "small", "image": "tiny"},
            }
        )

        async def running_on(host: str) -> bool:
            st = (await store.get(VM))["status"]
            assert (st.get("host"), st.get("domainState")) == (host, "running"), st
            return True

        await eventually(lambda: running_on("h1"))
        second_task = asyncio.create_task(second.run())
        await eventually(lambda: store.etcd.get(keys.alive("h2")))
        # h1 dies: its lease is revoked as its process ends
        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)

        async def marked_down() -> bool:
            obj = await store.get(VM)
            cond = condition(obj, "HostAlive")
            assert obj["status"].get("hostStatus") == "DOWN", obj["status"]
            assert cond is not None and cond["status"] == "False"
            return True

        await eventually(marked_down)
        await asyncio.sleep(1.0)
        assert (await store.get(VM))["status"]["host"] == "h1"  # not moved unasked
        await set_spec(store, evacuate=True)
        await eventually(lambda: running_on("h2"), timeout=20)
        alloc = await store.etcd.get(keys.alloc("h1"))
        assert alloc is not None and json.loads(alloc.value)["instances"] == {}
        assert (
            await store.etcd.get(keys.assign("h1", (await store.get(VM))["metadata"]["uid"]))
            is None
        )
        events = await store.events_for(VM, (await store.get(VM))["metadata"]["uid"])
        assert any(e["reason"] == "Evacuated" for e in events)
    finally:
        for t in (manager, first_task, second_task):
            if t is not None:
                t.cancel()
        await asyncio.gather(
            *(t for t in (manager, first_task, second_task) if t is not None),
            return_exceptions=True,
        )
        await first.driver.close()
        await second.driver.close()
