"""The object store against a real etcd: envelope rules, concurrency, deletion, paging."""

from __future__ import annotations

import asyncio

import pytest

from state import keys
from state.envelope import SCHEDULER_FINALIZER, Ref
from state.errors import AlreadyExists, Conflict, NotFound, Unavailable
from state.etcd import EtcdClient, Put, absent
from state.selectors import parse
from state.store import Store


def flavor(name: str, vcpus: int = 1, **labels: str) -> dict:
    return {
        "apiVersion": "desired/v1",
        "kind": "Flavor",
        "metadata": {"name": name, "labels": labels},
        "spec": {"vcpus": vcpus, "ramMiB": 512, "diskGiB": 1},
    }


def instance(name: str, project: str = "demo") -> dict:
    return {
        "apiVersion": "desired/v1",
        "kind": "Instance",
        "metadata": {"name": name, "project": project},
        "spec": {"flavor": "m1.tiny", "image": "tiny"},
    }


async def test_create_assigns_server_fields_and_get_reads_them(store: Store) -> None:
    created = await store.create(flavor("m1.tiny"))
    meta = created["metadata"]
    assert len(meta["uid"]) == 36
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) > 0
    assert meta["creationTimestamp"].endswith("Z")
    got = await store.get(Ref("Flavor", None, "m1.tiny"))
    assert got["metadata"] == meta
    assert got["spec"] == {"vcpus": 1, "ramMiB": 512, "diskGiB": 1}
    assert got["status"] == {}
    raw = await store.etcd.get(keys.spec("Flavor", None, "m1.tiny"))
    assert raw is not None and b'"status"' not in raw.value


async def test_create_twice_is_already_exists(store: Store) -> None:
    await store.create(instance("vm1"))
    with pytest.raises(AlreadyExists):
        await store.create(instance("vm1"))
    # the same name in another project is another object
    other = await store.create(instance("vm1", project="other"))
    assert other["metadata"]["project"] == "other"


async def test_update_compares_resource_version_and_bumps_generation(store: Store) -> None:
    created = await store.create(flavor("f"))
    changed = dict(created, spec=dict(created["spec"], vcpus=4))
    updated = await store.update(changed)
    assert updated is not None
    assert updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    with pytest.raises(Conflict):
        await store.update(dict(created, spec=dict(created["spec"], vcpus=8)))
    # metadata-only change keeps the generation
    updated["metadata"]["labels"] = {"tier": "gold"}
    relabelled = await store.update(updated)
    assert relabelled is not None and relabelled["metadata"]["generation"] == 2
    assert (await store.get(Ref("Flavor", None, "f")))["spec"]["vcpus"] == 4


async def test_racing_updates_exactly_one_wins(store: Store) -> None:
    created = await store.create(flavor("race"))
    attempts = [dict(created, spec=dict(created["spec"], vcpus=n)) for n in range(2, 12)]
    results = await asyncio.gather(*(store.update(a) for a in attempts), return_exceptions=True)
    winners = [r for r in results if isinstance(r, dict)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, dict))
    final = await store.get(Ref("Flavor", None, "race"))
    assert final["spec"]["vcpus"] == winners[0]["spec"]["vcpus"]


async def test_delete_waits_for_finalizers(store: Store) -> None:
    obj = instance("vm")
    obj["metadata"]["finalizers"] = ["hostd", "network"]
    await store.create(obj)
    r = Ref("Instance", "demo", "vm")
    await store.patch_status(r, lambda s: s.update(vmState="active") or True)
    marked = await store.delete(r)
    assert marked is not None and marked["metadata"]["deletionTimestamp"]
    # deleting again changes nothing
    again = await store.delete(r)
    assert again is not None
    assert again["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]
    # the spec of a deleting object is frozen
    with pytest.raises(Conflict):
        await store.update(dict(again, spec={"flavor": "m1.big", "image": "tiny"}))
    # an Instance also carries the scheduler's finalizer from its creation on
    assert marked["metadata"]["finalizers"] == ["hostd", "network", SCHEDULER_FINALIZER]
    assert await store.remove_finalizer(r, "hostd") is not None
    assert await store.remove_finalizer(r, SCHEDULER_FINALIZER) is not None
    assert await store.remove_finalizer(r, "network") is None
    with pytest.raises(NotFound):
        await store.get(r)
    # status went with it
    assert await store.etcd.get(keys.status("Instance", "demo", "vm")) is None


async def test_delete_without_finalizers_removes_at_once(store: Store) -> None:
    await store.create(flavor("gone"))
    assert await store.delete(Ref("Flavor", None, "gone")) is None
    with pytest.raises(NotFound):
        await store.delete(Ref("Flavor", None, "gone"))


async def test_status_has_its_own_door_and_survives_spec_updates(store: Store) -> None:
    created = await store.create(instance("vm"))
    r = Ref("Instance", "demo", "vm")

    def set_active(status: dict) -> bool:
        if status.get("vmState") == "active":
            return False
        status["vmState"] = "active"
        return True

    await store.patch_status(r, set_active)
    raw = await store.etcd.get(keys.status("Instance", "demo", "vm"))
    assert raw is not None
    # an unchanged status writes nothing
    await store.patch_status(r, set_active)
    again = await store.etcd.get(keys.status("Instance", "demo", "vm"))
    assert again is not None and again.mod_revision == raw.mod_revision
    updated = await store.update(dict(created, spec=dict(created["spec"], flavor="m1.small")))
    assert updated is not None and updated["status"] == {"vmState": "active"}
    # a client's status in an update is ignored
    updated["status"] = {"vmState": "error"}
    await store.update(updated)
    assert (await store.get(r))["status"] == {"vmState": "active"}


async def test_concurrent_status_patches_all_land(store: Store) -> None:
    await store.create(instance("counter"))
    r = Ref("Instance", "demo", "counter")

    def bump(status: dict) -> bool:
        status["n"] = status.get("n", 0) + 1
        return True

    await asyncio.gather(*(store.patch_status(r, bump) for _ in range(10)))
    assert (await store.get(r))["status"]["n"] == 10


async def test_a_status_patch_from_a_stale_read_lands_on_the_present_status(
    store: Store,
) -> None:
    """A writer that passes the object it read writes without reading again; if another
    wrote meanwhile, the patch is applied again on what that one wrote."""
    await store.create(instance("vm"))
    r = Ref("Instance", "demo", "vm")
    seen = await store.get(r)
    mine = await store.patch_status(r, lambda s: s.update(a=1) or True, current=seen)
    assert mine is not None and mine["status"] == {"a": 1}
    assert seen["status"] == {}  # the caller's copy is left alone
    await store.patch_status(r, lambda s: s.update(b=2) or True)  # another writer
    again = await store.patch_status(r, lambda s: s.update(a=3) or True, current=mine)
    assert again is not None and again["status"] == {"a": 3, "b": 2}
    assert (await store.get(r))["status"] == {"a": 3, "b": 2}
    # an object deleted and made again under the same name is another: not written
    stale = await store.get(r)
    await store.delete(r)
    await store.remove_finalizer(r, SCHEDULER_FINALIZER)
    await store.create(instance("vm"))
    assert (
        await store.patch_status(r, lambda s: True, uid=stale["metadata"]["uid"], current=stale)
        is None
    )
    assert (await store.get(r))["status"] == {}


async def test_status_of_an_older_namesake_is_ignored(store: Store) -> None:
    await store.create(instance("vm"))
    r = Ref("Instance", "demo", "vm")
    old = await store.get(r)
    await store.delete(r)
    await store.remove_finalizer(r, SCHEDULER_FINALIZER)  # no scheduler runs here
    await store.create(instance("vm"))
    # a late writer for the old uid is refused ...
    assert await store.patch_status(r, lambda s: True, uid=old["metadata"]["uid"]) is None
    # ... and a stale status key written behind the store's back is not shown
    await store.etcd.put(
        keys.status("Instance", "demo", "vm"),
        b'{"uid":"%s","status":{"vmState":"error"}}' % old["metadata"]["uid"].encode(),
    )
    assert (await store.get(r))["status"] == {}


async def test_list_pages_at_one_revision(store: Store) -> None:
    for i in range(25):
        await store.create(flavor(f"f{i:02d}", tier="gold" if i % 2 else "silver"))
    first = await store.list("Flavor", limit=10)
    assert [o["metadata"]["name"] for o in first.items] == [f"f{i:02d}" for i in range(10)]
    assert first.continue_token
    # a change after the first page does not show on later pages
    await store.create(flavor("f15a"))
    await store.delete(Ref("Flavor", None, "f20"))
    names = [o["metadata"]["name"] for o in first.items]
    token = first.continue_token
    while token:
        page = await store.list("Flavor", limit=10, continue_token=token)
        assert page.revision == first.revision
        names += [o["metadata"]["name"] for o in page.items]
        token = page.continue_token
    assert names == [f"f{i:02d}" for i in range(25)]
    gold = await store.list("Flavor", selector=parse("tier=gold"))
    assert [o["metadata"]["name"] for o in gold.items] == [
        f"f{i:02d}" for i in range(1, 25, 2) if i != 20
    ]
    paged_gold = await store.list("Flavor", selector=parse("tier in (gold)"), limit=5)
    assert len(paged_gold.items) == 5 and paged_gold.continue_token


async def test_list_by_project(store: Store) -> None:
    await store.create(instance("a", "p1"))
    await store.create(instance("b", "p2"))
    assert [o["metadata"]["name"] for o in (await store.list("Instance", "p1")).items] == ["a"]
    assert len((await store.list("Instance")).items) == 2


async def test_multi_key_txn_is_atomic(store: Store) -> None:
    a, b = b"/desired/v1/usage/p1", b"/desired/v1/usage/p2"
    await store.etcd.put(b, b"taken")
    res = await store.txn([absent(a), absent(b)], [Put(a, b"1"), Put(b, b"1")])
    assert not res.succeeded
    assert await store.etcd.get(a) is None
    assert (await store.etcd.get(b)).value == b"taken"  # type: ignore[union-attr]


async def test_leases_expire_and_keepalive_holds_them(etcd: EtcdClient) -> None:
    lease = await etcd.lease_grant(2)
    await etcd.put(keys.alive("h1"), b"1", lease=lease)
    short = await etcd.lease_grant(1)
    await etcd.put(keys.alive("h2"), b"1", lease=short)
    for _ in range(6):
        await asyncio.sleep(0.5)
        assert await etcd.lease_keepalive(lease) > 0
    assert await etcd.get(keys.alive("h1")) is not None
    assert await etcd.get(keys.alive("h2")) is None
    with pytest.raises(NotFound):
        await etcd.lease_keepalive(short)
    await etcd.lease_revoke(lease)
    assert await etcd.get(keys.alive("h1")) is None


async def test_unreachable_etcd_is_unavailable_and_writes_nothing() -> None:
    from fixtures.ports import free_port

    client = EtcdClient(f"http://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(Unavailable, match="retry later"):
        await Store(client).create(flavor("x"))
    await client.close()


async def test_events_are_recorded_per_object_on_a_lease(store: Store) -> None:
    vm = await store.create(instance("vm"))
    other = await store.create(instance("other"))
    await store.record_event(vm, "Normal", "Scheduled", "placed on host1")
    await store.record_event(other, "Warning", "Failed", "no valid host")
    events = await store.events_for(Ref("Instance", "demo", "vm"), vm["metadata"]["uid"])
    assert [(e["type"], e["reason"], e["message"]) for e in events] == [
        ("Normal", "Scheduled", "placed on host1")
    ]
    raw = await store.etcd.range(keys.events_prefix("demo"), keys.events_prefix("demo") + b"\xff")
    assert raw.kvs and all(kv.lease for kv in raw.kvs)


async def test_resource_version_moves_with_status_but_status_never_blocks_an_update(
    store: Store,
) -> None:
    created = await store.create(instance("vm"))
    r = Ref("Instance", "demo", "vm")
    after_status = await store.patch_status(r, lambda s: s.update(vmState="active") or True)
    assert after_status is not None
    read = await store.get(r)
    assert int(read["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    # a client holding the object from before the status write can still update the spec
    stale_for_status = dict(created, spec=dict(created["spec"], flavor="m1.small"))
    updated = await store.update(stale_for_status)
    assert updated is not None and updated["status"] == {"vmState": "active"}
    # but not after a spec write it has not seen
    with pytest.raises(Conflict):
        await store.update(dict(created, spec=dict(created["spec"], flavor="m1.large")))
