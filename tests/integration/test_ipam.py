"""Addresses allocated race-free in a real etcd: racing allocations never share an address,
a port keeps its address, a full pool and a taken fixed address are refused, release frees
only the instance's own."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from state import ipam
from state.errors import BadRequest
from state.store import Store


async def _network(store: Store, cidr: str, **spec: object) -> dict:
    return await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "net", "project": "demo"},
            "spec": {"cidr": cidr, **spec},
        }
    )


async def test_racing_allocations_never_share_an_address(store: Store) -> None:
    net = await _network(store, "10.9.0.0/27", dhcpRange={"start": "10.9.0.10", "end": "10.9.0.29"})
    uids = [str(uuid.uuid4()) for _ in range(20)]
    ports = await asyncio.gather(*(ipam.allocate(store.etcd, net, u, 0) for u in uids))
    addresses = [p.address for p in ports]
    assert len(set(addresses)) == 20
    assert set(addresses) == {f"10.9.0.{i}" for i in range(10, 30)}
    assert len({p.mac for p in ports}) == 20 and all(p.mac.startswith("fa:16:3e:") for p in ports)
    # the pool is full now
    with pytest.raises(ipam.PoolExhausted):
        await ipam.allocate(store.etcd, net, str(uuid.uuid4()), 0)
    # a port asks again: the same address
    again = await ipam.allocate(store.etcd, net, uids[3], 0)
    assert again == ports[3]
    # release frees the instance's addresses only
    assert await ipam.release(store.etcd, net["metadata"]["uid"], uids[3]) == 1
    held = await ipam.held(store.etcd, net["metadata"]["uid"])
    assert ports[3].address not in held and len(held) == 19
    newcomer = await ipam.allocate(store.etcd, net, str(uuid.uuid4()), 0)
    assert newcomer.address == ports[3].address


async def test_fixed_addresses(store: Store) -> None:
    net = await _network(store, "10.8.0.0/24", gateway="10.8.0.1")
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    port = await ipam.allocate(store.etcd, net, a, 0, wanted="10.8.0.50")
    assert port.address == "10.8.0.50"
    with pytest.raises(ipam.AddressInUse):
        await ipam.allocate(store.etcd, net, b, 0, wanted="10.8.0.50")
    for bad in ("10.8.0.1", "10.8.0.255", "10.9.0.5"):
        with pytest.raises(BadRequest):
            await ipam.allocate(store.etcd, net, b, 0, wanted=bad)
    # racing for one fixed address: exactly one wins
    racers = [str(uuid.uuid4()) for _ in range(8)]
    results = await asyncio.gather(
        *(ipam.allocate(store.etcd, net, r, 0, wanted="10.8.0.60") for r in racers),
        return_exceptions=True,
    )
    assert sum(isinstance(r, ipam.Port) for r in results) == 1
    assert sum(isinstance(r, ipam.AddressInUse) for r in results) == 7
    # without a dhcpRange: every host address after the gateway, not the gateway
    assert ipam.pool(net["spec"])[0].exploded == "10.8.0.2"
    assert ipam.pool(net["spec"])[-1].exploded == "10.8.0.254"
