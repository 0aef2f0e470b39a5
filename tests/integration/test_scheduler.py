"""The scheduler against a real etcd: placement, no over-commit under racing replicas, retries, release."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from reconcilers import wiring
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.manager import Manager
from reconcilers.scheduler import FINALIZER
from state import keys
from state.envelope import Ref, condition
from state.errors import NotFound
from state.etcd import EtcdClient, prefix_end
from state.store import Store, dumps
from tests.conftest import eventually


async def add_host(
    etcd: EtcdClient, name: str, vcpus: int = 4, ram: int = 4096, alive: bool = True
) -> None:
    record = {
        "name": name,
        "zone": "nova",
        "capacity": {"vcpus": vcpus, "ramMiB": ram, "diskGiB": 100},
    }
    await etcd.put(keys.host(name), dumps(record))
    if alive:
        lease = await etcd.lease_grant(60)
        await etcd.put(keys.alive(name), b"1", lease=lease)
    # placement settings: no overcommit, nothing reserved, so that limits are exact
    store = Store(etcd)
    await store.create(
        {
            "kind": "Host",
            "metadata": {"name": name},
            "spec": {
                "allocationRatios": {"cpu": 1.0, "ram": 1.0, "disk": 1.0},
                "reserved": {"ramMiB": 0},
            },
        }
    )


async def base_objects(store: Store) -> None:
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "small"},
            "spec": {"vcpus": 1, "ramMiB": 1024, "diskGiB": 1},
        }
    )
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "huge"},
            "spec": {"vcpus": 64, "ramMiB": 1024, "diskGiB": 1},
        }
    )
    await store.create(
        {
            "kind": "Image",
            "metadata": {"name": "tiny"},
            "spec": {"visibility": "public", "diskFormat": "qcow2"},
        }
    )


def instance(name: str, flavor: str = "small", image: str = "tiny") -> dict:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "project": "demo"},
        "spec": {"flavor": flavor, "image": image},
    }


@contextlib.asynccontextmanager
async def schedulers(
    store: Store, replicas: int = 1, no_valid_host_after: float = 30.0
) -> AsyncIterator[None]:
    tasks = []
    for _ in range(replicas):
        informer = Informer(store.etcd, "Instance")
        controller, needs = wiring.scheduler(
            store, informer, no_valid_host_after=no_valid_host_after
        )
        tasks.append(asyncio.create_task(Manager([informer, *needs], [controller]).run()))
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def allocations(etcd: EtcdClient) -> dict[str, dict]:
    res = await etcd.range(keys.alloc_prefix(), prefix_end(keys.alloc_prefix()))
    return {keys.last_segment(kv.key): json.loads(kv.value) for kv in res.kvs}


async def test_places_within_capacity_and_writes_assignments(
    store: Store, etcd: EtcdClient
) -> None:
    await base_objects(store)
    await add_host(etcd, "h1")
    await add_host(etcd, "h2")
    async with schedulers(store):
        for i in range(6):
            await store.create(instance(f"vm{i}"))

        async def placed() -> bool:
            items = (await store.list("Instance", "demo")).items
            assert all(o["status"].get("host") for o in items) and len(items) == 6
            return True

        await eventually(placed)
    allocs = await allocations(etcd)
    assert sorted(len(a["instances"]) for a in allocs.values()) == [3, 3]  # spread
    for host, a in allocs.items():
        assert a["used"]["ramMiB"] == 1024 * len(a["instances"])
        for uid in a["instances"]:
            assignment = await etcd.get(keys.assign(host, uid))
            assert assignment is not None
            body = json.loads(assignment.value)
            assert body["flavor"] == {"name": "small", "vcpus": 1, "ramMiB": 1024, "diskGiB": 1}
    vm = await store.get(Ref("Instance", "demo", "vm0"))
    assert FINALIZER in vm["metadata"]["finalizers"]
    assert condition(vm, "Scheduled")["status"] == "True"  # type: ignore[index]


async def test_racing_replicas_never_over_commit(store: Store, etcd: EtcdClient) -> None:
    await base_objects(store)
    for h in ("h1", "h2", "h3"):
        await add_host(etcd, h, vcpus=8, ram=4096)  # room for 4 small instances each
    for i in range(20):
        await store.create(instance(f"vm{i:02d}"))
    async with schedulers(store, replicas=3, no_valid_host_after=0):

        async def settled() -> bool:
            items = (await store.list("Instance", "demo")).items
            done = [o for o in items if o["status"].get("host") or condition(o, "Scheduled")]
            assert len(done) == 20
            return True

        await eventually(settled, timeout=20)
    allocs = await allocations(etcd)
    seen: set[str] = set()
    for a in allocs.values():
        assert a["used"]["ramMiB"] <= 4096
        assert not (seen & set(a["instances"]))  # never on two hosts
        seen |= set(a["instances"])
    assert len(seen) == 12
    unplaced = [
        o for o in (await store.list("Instance", "demo")).items if not o["status"].get("host")
    ]
    assert len(unplaced) == 8
    for o in unplaced:
        cond = condition(o, "Scheduled")
        assert cond is not None and cond["reason"] == "NoValidHost"
        assert cond["message"].startswith("No valid host was found.")
        assert (o["status"]["vmState"], o["status"]["fault"]["code"]) == ("error", 500)
        events = await store.events_for(Ref("Instance", "demo", o["metadata"]["name"]))
        assert "NoValidHost" in {e["reason"] for e in events}


async def test_unschedulable_waits_for_capacity(store: Store, etcd: EtcdClient) -> None:
    await base_objects(store)
    async with schedulers(store):
        await store.create(instance("vm"))

        async def no_host() -> bool:
            vm = await store.get(Ref("Instance", "demo", "vm"))
            cond = condition(vm, "Scheduled")
            # retried, not yet Nova's fault: still building
            assert cond is not None and cond["reason"] == "Unschedulable"
            assert vm["status"]["vmState"] == "building" and "fault" not in vm["status"]
            return True

        await eventually(no_host)

        async def retries_said() -> bool:
            events = await store.events_for(Ref("Instance", "demo", "vm"))
            said = [e["message"] for e in events if e["reason"] == "Unschedulable"]
            assert len(said) >= 2 and all("retrying every 2 s" in m for m in said), said
            return True

        await eventually(retries_said)  # one at the first try, one at the retry 2 s later
        assert len(await store.events_for(Ref("Instance", "demo", "vm"))) <= 3
        await add_host(etcd, "late")

        async def placed() -> bool:
            return (await store.get(Ref("Instance", "demo", "vm")))["status"].get("host") == "late"

        await eventually(placed)


async def test_bad_references_are_reported(store: Store, etcd: EtcdClient) -> None:
    await base_objects(store)
    await add_host(etcd, "h1")
    async with schedulers(store):
        await store.create(instance("noflavor", flavor="nope"))
        await store.create(instance("noimage", image="nope"))

        async def reported() -> bool:
            a = condition(await store.get(Ref("Instance", "demo", "noflavor")), "Scheduled")
            b = condition(await store.get(Ref("Instance", "demo", "noimage")), "Scheduled")
            assert a is not None and a["message"] == "flavor 'nope' not found"
            assert b is not None and b["message"] == "image 'nope' not found"
            return True

        await eventually(reported)
    assert await allocations(etcd) == {}


async def test_delete_releases_after_hostd_reports_the_domain_removed(
    store: Store, etcd: EtcdClient
) -> None:
    await base_objects(store)
    await add_host(etcd, "h1")
    async with schedulers(store):
        await store.create(instance("vm"))
        r = Ref("Instance", "demo", "vm")

        async def placed() -> bool:
            return bool((await store.get(r))["status"].get("host"))

        await eventually(placed)
        uid = (await store.get(r))["metadata"]["uid"]
        await store.delete(r)

        async def assignment_gone() -> bool:
            return await etcd.get(keys.assign("h1", uid)) is None

        await eventually(assignment_gone)
        assert (await allocations(etcd))["h1"]["instances"]  # still held until hostd reports
        # hostd reports the domain removed
        await store.patch_status(r, lambda s: s.update(domainState="removed") or True)

        async def gone() -> bool:
            try:
                await store.get(r)
            except NotFound:
                return True
            return False

        await eventually(gone)
        assert (await allocations(etcd))["h1"] == {
            "instances": {},
            "used": {"vcpus": 0, "ramMiB": 0, "diskGiB": 0},
        }


async def test_instances_of_a_dead_host_are_released_at_once_on_delete(
    store: Store, etcd: EtcdClient
) -> None:
    await base_objects(store)
    await add_host(etcd, "h1")
    async with schedulers(store):
        await store.create(instance("vm"))
        r = Ref("Instance", "demo", "vm")

        async def placed() -> bool:
            return bool((await store.get(r))["status"].get("host"))

        await eventually(placed)
        await etcd.delete(keys.alive("h1"))  # the host's lease expired
        await store.delete(r)

        async def gone() -> bool:
            try:
                await store.get(r)
            except NotFound:
                return True
            return False

        await eventually(gone)
        assert (await allocations(etcd))["h1"]["instances"] == {}


async def test_a_restarted_scheduler_places_on_hosts_with_allocations(
    store: Store, etcd: EtcdClient
) -> None:
    """The view must carry each allocation's own revision, or every placement conflicts."""
    await base_objects(store)
    await add_host(etcd, "h1")
    async with schedulers(store):
        await store.create(instance("first"))

        async def first_placed() -> bool:
            return bool((await store.get(Ref("Instance", "demo", "first")))["status"].get("host"))

        await eventually(first_placed)
    async with schedulers(store):
        await store.create(instance("second"))

        async def second_placed() -> bool:
            return bool((await store.get(Ref("Instance", "demo", "second")))["status"].get("host"))

        await eventually(second_placed)
    assert len((await allocations(etcd))["h1"]["instances"]) == 2


async def test_anti_affinity_and_aggregate_metadata(store: Store, etcd: EtcdClient) -> None:
    await base_objects(store)
    for h in ("h1", "h2", "h3"):
        await add_host(etcd, h)
    await store.create(
        {
            "kind": "ServerGroup",
            "metadata": {"name": "spread", "project": "demo"},
            "spec": {"policy": "anti-affinity"},
        }
    )
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "ssd"},
            "spec": {
                "vcpus": 1,
                "ramMiB": 512,
                "diskGiB": 1,
                "extraSpecs": {"aggregate_instance_extra_specs:disk": "ssd"},
            },
        }
    )
    h3 = await store.get(Ref("Host", None, "h3"))
    h3["spec"]["metadata"] = {"disk": "ssd"}
    await store.update(h3)
    async with schedulers(store):
        for i in range(4):
            obj = instance(f"g{i}")
            obj["spec"]["serverGroup"] = "spread"
            await store.create(obj)
        await store.create(instance("fast", flavor="ssd"))

        async def placed() -> bool:
            hosts = {}
            for o in (await store.list("Instance", "demo")).items:
                hosts[o["metadata"]["name"]] = o["status"].get("host")
            group = [hosts[f"g{i}"] for i in range(4)]
            assert sorted(h for h in group if h) == ["h1", "h2", "h3"], hosts
            assert hosts["fast"] == "h3"
            return True

        await eventually(placed)

        async def refused() -> bool:  # the fourth member's condition may come a moment later
            left = next(
                o
                for o in (await store.list("Instance", "demo")).items
                if o["metadata"]["name"].startswith("g") and not o["status"].get("host")
            )
            cond = condition(left, "Scheduled")
            assert cond is not None and "anti-affinity" in cond["message"], cond
            return True

        await eventually(refused)
