"""The network reconciler with a real etcd: ports get addresses of their networks (the
project's default one, a shared one, a fixed address), a full network or a missing one is
a NetworkReady=False condition retried, addresses come back when instances are deleted or
drop a port, and the sweep frees those of instances that are gone; floating IPs get
addresses of their pools, and the sweep frees those of floating IPs and networks that
are gone."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from reconcilers.floating_ips import FloatingIPReconciler
from reconcilers.network import controller as network_controller
from reconcilers.network import sweep
from reconcilers.runtime.controller import Controller
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.manager import Manager
from state import ipam, keys
from state.envelope import Ref, condition, set_condition
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import flavor_and_image
from tests.integration.test_identity import api_cloud


@contextlib.asynccontextmanager
async def network_reconciler(store: Store) -> AsyncIterator[None]:
    informer = Informer(store.etcd, "Instance")
    networks = Informer(store.etcd, "Network")
    controller = network_controller(store, informer, networks, retry=0.2, resync=1.0)
    fips = Informer(store.etcd, "FloatingIP")
    fip_controller = Controller(FloatingIPReconciler(store, retry=0.2), [fips], resync=1.0)
    tasks = [
        asyncio.create_task(
            Manager([informer, networks, fips], [controller, fip_controller]).run()
        ),
        asyncio.create_task(sweep(store, 0.3)),
    ]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _instance(store: Store, name: str, **spec: object) -> Ref:
    await store.create(
        {
            "kind": "Instance",
            "metadata": {"name": name, "project": "demo"},
            "spec": {"flavor": "small", "image": "tiny", **spec},
        }
    )
    return Ref("Instance", "demo", name)


async def give_port(store: Store, inst: dict[str, Any], network: str, address: str) -> None:
    """Writes the port the network reconciler would give ``inst`` on ``network`` (of its
    project), for tests of what reads ports."""
    meta = inst["metadata"]
    net = await store.get(Ref("Network", meta["project"], network))
    port = {"network": network, "networkUid": net["metadata"]["uid"], "address": address}

    def mutate(status: dict[str, Any]) -> bool:
        status["ports"] = [{**port, "mac": ipam.mac_of(meta["uid"], 0)}]
        set_condition(status, "NetworkReady", True, "Allocated", "1 port(s)")
        return True

    await store.patch_status(
        Ref("Instance", meta["project"], meta["name"]), mutate, uid=meta["uid"]
    )


async def _status(store: Store, r: Ref) -> dict:
    return dict((await store.get(r)).get("status", {}))


async def test_ports_get_addresses_and_give_them_back(store: Store) -> None:
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "default", "project": "demo"},
            "spec": {
                "cidr": "10.20.0.0/29",
                "dhcpRange": {"start": "10.20.0.2", "end": "10.20.0.5"},
            },
        }
    )
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "common", "project": "admin"},
            "spec": {"cidr": "10.30.0.0/24", "shared": True},
        }
    )
    async with network_reconciler(store):
        vm1 = await _instance(store, "vm1")
        vm2 = await _instance(
            store,
            "vm2",
            networks=[{"network": "common"}, {"network": "default", "fixedAddress": "10.20.0.6"}],
        )
        lost = await _instance(store, "lost", networks=[{"network": "nope"}])

        async def ready(r: Ref) -> dict:
            status = await _status(store, r)
            cond = condition({"status": status}, "NetworkReady")
            return status if cond is not None and cond["status"] == "True" else {}

        first = (await eventually(lambda: ready(vm1)))["ports"]
        assert [(p["network"], p["address"].rsplit(".", 1)[0]) for p in first] == [
            ("default", "10.20.0")
        ]
        second = (await eventually(lambda: ready(vm2)))["ports"]
        assert [(p["network"], p["address"]) for p in second][1] == ("default", "10.20.0.6")
        assert second[0]["network"] == "common" and second[0]["address"].startswith("10.30.0.")
        assert second[0]["mac"] != second[1]["mac"]

        async def refused(r: Ref, reason: str) -> bool:
            cond = condition({"status": await _status(store, r)}, "NetworkReady")
            return cond is not None and cond["status"] == "False" and cond["reason"] == reason

        await eventually(lambda: refused(lost, "NetworkNotFound"))
        # fill the default network (4 addresses in its range; vm1 holds one)
        more = [await _instance(store, f"more-{i}") for i in range(4)]

        async def one_refused() -> Ref | None:
            out = [r for r in more if await refused(r, "PoolExhausted")]
            ok = [r for r in more if await ready(r)]
            return out[0] if len(out) == 1 and len(ok) == 3 else None

        waiting = await eventually(one_refused)
        # deleting vm1 (held by the scheduler's finalizer here) frees its address: the
        # waiting instance gets it
        await store.delete(vm1)
        taken = first[0]["address"]

        async def got_it() -> bool:
            status = await ready(waiting)
            return bool(status) and status["ports"][0]["address"] == taken

        await eventually(got_it)
        # a port dropped from the spec gives its address back
        obj = await store.get(vm2)
        obj["spec"]["networks"] = [{"network": "common"}]
        await store.update(obj)
        default_uid = (await store.get(Ref("Network", "demo", "default")))["metadata"]["uid"]

        async def dropped() -> bool:
            return "10.20.0.6" not in await ipam.held(store.etcd, default_uid)

        await eventually(dropped)
        # an address held for an instance that is gone: swept
        stray = keys.ipam(default_uid, "10.20.0.7")
        await store.etcd.put(stray, json.dumps({"instance": "gone", "port": 0}).encode())

        async def swept() -> bool:
            return await store.etcd.get(stray) is None

        await eventually(swept)
        # an instance of a project without networks gets no port; once the project has
        # a default network, it gets one there
        await store.create(
            {
                "kind": "Instance",
                "metadata": {"name": "early", "project": "late"},
                "spec": {"flavor": "small", "image": "tiny"},
            }
        )
        early = Ref("Instance", "late", "early")
        await asyncio.sleep(0.5)
        assert "ports" not in await _status(store, early)
        await store.create(
            {
                "kind": "Network",
                "metadata": {"name": "default", "project": "late"},
                "spec": {"cidr": "10.50.0.0/24"},
            }
        )
        late_ports = (await eventually(lambda: ready(early)))["ports"]
        assert late_ports[0]["address"].startswith("10.50.0.")


async def test_servers_show_their_addresses(store: Store, sql_url: str) -> None:
    """The Compute API: "auto" is the default network, "none" no port, a network by uuid
    with a fixed address; a server's addresses as Nova shows them."""
    await flavor_and_image(store)
    for name, cidr in (("default", "10.40.0.0/24"), ("backend", "10.41.0.0/24")):
        await store.create(
            {
                "kind": "Network",
                "metadata": {"name": name, "project": "demo"},
                "spec": {"cidr": cidr},
            }
        )
    backend = (await store.get(Ref("Network", "demo", "backend")))["metadata"]["uid"]
    async with network_reconciler(store), api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"), "2.47")
        tiny = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]

        async def create(networks: object) -> str:
            server = {"name": "vm", "imageRef": tiny, "flavorRef": "small", "networks": networks}
            code, body = await demo("POST", "/servers", {"server": server})
            assert code == 202, body
            return str(body["server"]["id"])

        auto = await create("auto")
        none = await create("none")
        fixed = await create([{"uuid": backend, "fixed_ip": "10.41.0.9"}])
        unknown = [{"uuid": "0" * 8 + "-0000-0000-0000-" + "0" * 12}]
        code, body = await demo(
            "POST",
            "/servers",
            {"server": {"name": "x", "imageRef": tiny, "flavorRef": "small", "networks": unknown}},
        )
        assert (code, body["badRequest"]["message"]) == (
            400,
            f"Network {unknown[0]['uuid']} could not be found.",
        )

        async def addresses(sid: str) -> dict:
            _, body = await demo("GET", f"/servers/{sid}")
            return dict(body["server"]["addresses"])

        shown = await eventually(lambda: addresses(fixed))
        (entry,) = shown["backend"]
        assert (entry["addr"], entry["version"], entry["OS-EXT-IPS:type"]) == (
            "10.41.0.9",
            4,
            "fixed",
        )
        assert entry["OS-EXT-IPS-MAC:mac_addr"].startswith("fa:16:3e:")
        shown = await eventually(lambda: addresses(auto))
        assert list(shown) == ["default"] and shown["default"][0]["addr"].startswith("10.40.0.")
        assert await addresses(none) == {}
        # the basic view of an update: addresses without type and MAC
        _, body = await demo("PUT", f"/servers/{fixed}", {"server": {"name": "renamed"}})
        assert body["server"]["addresses"] == {"backend": [{"addr": "10.41.0.9", "version": 4}]}
        # the ip filter: a regular expression on the servers' fixed addresses

        async def listed(query: str) -> list[str]:
            code, body = await demo("GET", f"/servers?{query}")
            assert code == 200, body
            return sorted(s["id"] for s in body["servers"])

        async def filtered() -> bool:
            return await listed("ip=10.41.0.9") == [fixed]

        await eventually(filtered)
        assert await listed("ip=^10%5C.40%5C.") == [auto]
        assert await listed("ip=10%5C.4") == sorted([auto, fixed])
        assert await listed("ip=^0%5C.40") == []
        assert (await demo("GET", "/servers?ip=("))[0] == 400


async def test_floating_ips_get_addresses_of_their_pools(store: Store) -> None:
    for name, spec in (
        ("public", {"cidr": "203.0.113.0/29", "external": True}),
        ("private", {"cidr": "10.70.0.0/24"}),
    ):
        await store.create(
            {"kind": "Network", "metadata": {"name": name, "project": "demo"}, "spec": spec}
        )
    public = await store.get(Ref("Network", "demo", "public"))
    pool_uid = public["metadata"]["uid"]

    async def fip(name: str, **spec: object) -> Ref:
        await store.create(
            {"kind": "FloatingIP", "metadata": {"name": name, "project": "demo"}, "spec": spec}
        )
        return Ref("FloatingIP", "demo", name)

    async def allocated(r: Ref) -> dict:
        got = condition(await store.get(r), "Allocated")
        assert got is not None
        return got

    async with network_reconciler(store):
        # the fixed one first: an allocated one may take any free address
        fixed = await fip("fixed", pool="public", address="203.0.113.5")
        await eventually(lambda: _has_address(store, fixed))
        one = await fip("one", pool="public")
        wrong = await fip("wrong", pool="private")
        missing = await fip("missing", pool="nowhere")
        await eventually(lambda: _has_address(store, one))
        assert (await _status(store, one))["address"].startswith("203.0.113.")
        taken = await fip("taken", pool="public", address="203.0.113.5")
        assert (await _status(store, fixed))["address"] == "203.0.113.5"
        assert (await _status(store, fixed))["poolUid"] == pool_uid
        for r, reason in ((taken, "AddressInUse"), (wrong, "NotAPool"), (missing, "PoolNotFound")):
            cond = await eventually(lambda r=r: allocated(r))  # type: ignore[misc]
            assert (cond["status"], cond["reason"]) == ("False", reason), cond
        held = await ipam.held(store.etcd, pool_uid)
        assert len(held) == 2

        # a deleted floating IP's address is freed by the sweep, then a gone network's
        await store.delete(fixed)
        await eventually(lambda: _count(store, pool_uid, 1))
        await store.delete(one)
        await store.delete(taken)
        await store.delete(Ref("Network", "demo", "public"))
        private = await store.get(Ref("Network", "demo", "private"))
        await ipam.allocate(store.etcd, private, "a-vanished-instance", 0)
        await store.delete(Ref("Network", "demo", "private"))

        async def gone() -> bool:
            return not await ipam.networks(store.etcd)

        await eventually(gone)


async def _has_address(store: Store, r: Ref) -> bool:
    return bool((await _status(store, r)).get("address"))


async def _count(store: Store, net_uid: str, n: int) -> bool:
    return len(await ipam.held(store.etcd, net_uid)) == n
