"""What the scheduler tells hosts about an instance's network, from real etcd.

Shown: ports carry their network's bridge and gateway; a rule naming a group
as its remote is expanded to the addresses of that group's members in the
project (not another project's); egress rules appear only when a group has
some; IPv6 rules are left out; an associated floating IP carries its pool's
bridge; an instance waits for its ports; a member's new address requeues
the instances whose rules name its group.
"""

from __future__ import annotations

import asyncio
from typing import Any

from reconcilers.port_render import NetworkCatalog
from reconcilers.runtime.informer import Informer
from state import ipam
from state.envelope import Ref, ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_network_reconciler import give_port


async def _instance(
    store: Store, project: str, name: str, groups: list[str], address: str | None
) -> None:
    inst = await store.create(
        {
            "kind": "Instance",
            "metadata": {"name": name, "project": project},
            "spec": {
                "flavor": "small",
                "image": "tiny",
                "networks": [{"network": "default"}],
                "securityGroups": groups,
            },
        }
    )
    if address is not None:
        await give_port(store, inst, "default", address)


async def _move(store: Store, project: str, name: str, address: str) -> None:
    inst = await store.get(Ref("Instance", project, name))

    def mutate(status: dict[str, Any]) -> bool:
        status["ports"] = [{**status["ports"][0], "address": address}]
        return True

    await store.patch_status(Ref("Instance", project, name), mutate, uid=inst["metadata"]["uid"])


async def test_render_expands_groups_and_floating_ips(store: Store) -> None:
    for project, cidr in (("demo", "10.90.0.0/24"), ("other", "10.90.0.0/24")):
        await store.create(
            {
                "kind": "Network",
                "metadata": {"name": "default", "project": project},
                "spec": {"cidr": cidr},
            }
        )
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "public", "project": "demo"},
            "spec": {"cidr": "203.0.113.0/24", "external": True},
        }
    )
    rules = [
        {"direction": "ingress", "protocol": "tcp", "portRangeMin": 80, "remoteGroup": "db"},
        {"direction": "ingress", "protocol": "icmp", "ethertype": "IPv6"},
        {"direction": "egress", "protocol": "udp", "portRangeMin": 53, "remoteCidr": "0.0.0.0/0"},
    ]
    for project, name, group_rules in (
        ("demo", "web", rules),
        ("demo", "db", []),
        ("other", "db", []),
    ):
        await store.create(
            {
                "kind": "SecurityGroup",
                "metadata": {"name": name, "project": project},
                "spec": {"rules": group_rules},
            }
        )
    await _instance(store, "demo", "a", ["web"], "10.90.0.10")
    await _instance(store, "demo", "b", ["db"], "10.90.0.11")
    await _instance(store, "other", "c", ["db"], "10.90.0.12")
    await _instance(store, "demo", "waiting", ["db"], None)
    fip = await store.create(
        {
            "kind": "FloatingIP",
            "metadata": {"name": "f", "project": "demo"},
            "spec": {"pool": "public", "instance": "a"},
        }
    )

    def allocated(status: dict[str, Any]) -> bool:
        status["address"] = "203.0.113.9"
        return True

    await store.patch_status(Ref("FloatingIP", "demo", "f"), allocated, uid=fip["metadata"]["uid"])

    instances = Informer(store.etcd, "Instance")
    catalog = NetworkCatalog(store.etcd, instances)
    requeued: list[Ref] = []
    catalog.on_change(requeued.append)
    tasks = [asyncio.create_task(i.run()) for i in (instances, *catalog.informers)]
    try:
        for informer in (instances, *catalog.informers):
            await informer.synced.wait()
        a = instances.get(Ref("Instance", "demo", "a"))
        assert a is not None
        rendered = catalog.render(a)
        assert rendered is not None
        public = await store.get(Ref("Network", "demo", "public"))
        demo_net = await store.get(Ref("Network", "demo", "default"))
        (port,) = rendered["ports"]
        assert port["bridge"] == ipam.bridge_name(demo_net) and port["gateway"] == "10.90.0.1"
        assert rendered["ingress"] == [
            {"protocol": "tcp", "portRangeMin": 80, "remoteCidr": "10.90.0.11/32"}
        ]
        assert rendered["egress"] == [
            {"protocol": "udp", "portRangeMin": 53, "remoteCidr": "0.0.0.0/0"}
        ]
        (floating,) = rendered["floatingIps"]
        assert floating["address"] == "203.0.113.9" and floating["fixedAddress"] == "10.90.0.10"
        assert floating["bridge"] == ipam.bridge_name(public)
        b = instances.get(Ref("Instance", "demo", "b"))
        assert b is not None
        assert "egress" not in (catalog.render(b) or {})  # db has no egress rules: all allowed
        waiting = instances.get(Ref("Instance", "demo", "waiting"))
        assert waiting is not None and catalog.ports_pending(waiting)
        assert not catalog.ports_pending(a)

        # b (a member of db) moves: a's rule names db, so a is rendered again
        requeued.clear()
        await _move(store, "demo", "b", "10.90.0.20")
        await eventually(lambda: _contains(requeued, a))
        a_again = instances.get(Ref("Instance", "demo", "a"))
        assert a_again is not None
        assert (catalog.render(a_again) or {})["ingress"][0]["remoteCidr"] == "10.90.0.20/32"
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _contains(requeued: list[Ref], obj: dict[str, Any]) -> bool:
    return ref(obj) in requeued
