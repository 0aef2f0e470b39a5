"""Addresses allocated race-free in a real etcd: racing allocations never share an address
(on a /30, a /29, a /8: a property over batches of racing allocations and releases), a port
keeps its address, a full pool and a taken fixed address are refused, release frees only
the instance's own, and a /0 hands out its first addresses outside the special blocks as
fast as a small network does."""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.etcd import EtcdServer
from state import ipam, keys
from state.errors import BadRequest
from state.etcd import EtcdClient, prefix_end
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
    assert [(str(a), str(b)) for a, b in ipam.Pool.of(net["spec"]).bounds()] == [
        ("10.8.0.2", "10.8.0.254")
    ]


def _spec_only(cidr: str) -> dict:
    """A Network as allocate reads it (its uid is all its keys need), never stored."""
    return {
        "metadata": {"name": f"n-{uuid.uuid4().hex[:6]}", "uid": str(uuid.uuid4())},
        "spec": {"cidr": cidr},
    }


async def _check_held(etcd: EtcdClient, net: dict) -> dict[str, dict]:
    """The network's held addresses, after checking the invariants: each of the pool (or
    the fixed ones), no port holding two."""
    held = await ipam.held(etcd, net["metadata"]["uid"])
    pool = ipam.Pool.of(net["spec"])
    assert all(ipaddress.IPv4Address(a) in pool for a in held)
    holders = [(h["instance"], h["port"]) for h in held.values()]
    assert len(holders) == len(set(holders))
    return held


@pytest.mark.parametrize(("cidr", "size"), [("10.7.0.0/30", 1), ("10.0.0.0/8", 2**24 - 3)])
async def test_racing_allocations_on_a_30_and_an_8(store: Store, cidr: str, size: int) -> None:
    net = _spec_only(cidr)
    assert ipam.Pool.of(net["spec"]).size == size
    uids = [str(uuid.uuid4()) for _ in range(24)]
    results = await asyncio.gather(
        *(ipam.allocate(store.etcd, net, u, 0) for u in uids), return_exceptions=True
    )
    ports = [r for r in results if isinstance(r, ipam.Port)]
    assert len(ports) == min(size, 24)
    assert all(isinstance(r, ipam.Port | ipam.PoolExhausted) for r in results), results
    assert len({p.address for p in ports}) == len(ports)
    held = await _check_held(store.etcd, net)
    assert sorted(held) == sorted(p.address for p in ports)


async def test_a_slash_0_allocates_outside_the_special_blocks(store: Store) -> None:
    net = _spec_only("0.0.0.0/0")
    t0 = time.perf_counter()
    ports = [await ipam.allocate(store.etcd, net, str(uuid.uuid4()), 0) for _ in range(3)]
    assert time.perf_counter() - t0 < 1.0
    # a random one of the first eight free: racing allocations rarely pick the same
    assert len({p.address for p in ports}) == 3
    assert all(
        ipaddress.IPv4Address(p.address) in ipaddress.IPv4Network("1.0.0.0/28") for p in ports
    )
    for bad in ("127.0.0.1", "224.0.0.1", "0.0.0.1"):  # loopback, multicast, the gateway
        with pytest.raises(BadRequest):
            await ipam.allocate(store.etcd, net, str(uuid.uuid4()), 0, wanted=bad)
    assert await ipam.used(store.etcd, net["metadata"]["uid"]) == 3


_STEPS = st.lists(
    st.tuples(st.sampled_from(["allocate", "release"]), st.sets(st.integers(0, 7), min_size=1)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=15)
@given(cidr=st.sampled_from(["10.1.0.0/30", "10.2.0.0/29", "10.0.0.0/8"]), steps=_STEPS)
def test_allocations_and_releases_never_share_an_address(
    etcd_server: EtcdServer, cidr: str, steps: list[tuple[str, set[int]]]
) -> None:
    """Batches of racing allocations and releases of up to 8 instances: at every point no
    address is held by two ports, each held address is of the pool, a port asking again
    gets its address, and a pool is called exhausted only when it is full."""

    async def run() -> None:
        etcd = etcd_server.client()
        net = _spec_only(cidr)
        size = ipam.Pool.of(net["spec"]).size
        uids = [str(uuid.uuid4()) for _ in range(8)]
        mine: dict[int, str] = {}
        try:
            for verb, who in steps:
                if verb == "release":
                    await asyncio.gather(
                        *(ipam.release(etcd, net["metadata"]["uid"], uids[i]) for i in who)
                    )
                    for i in who:
                        mine.pop(i, None)
                else:
                    order = sorted(who)
                    results = await asyncio.gather(
                        *(ipam.allocate(etcd, net, uids[i], 0) for i in order),
                        return_exceptions=True,
                    )
                    for i, r in zip(order, results, strict=True):
                        if isinstance(r, ipam.Port):
                            assert mine.setdefault(i, r.address) == r.address
                        else:
                            assert isinstance(r, ipam.PoolExhausted), r
                            assert len(await ipam.held(etcd, net["metadata"]["uid"])) == size
                held = await _check_held(etcd, net)
                assert {a: h["instance"] for a, h in held.items()} == {
                    a: uids[i] for i, a in mine.items()
                }
        finally:
            await etcd.delete(*_prefix(net))
            await etcd.close()

    asyncio.run(run())


def _prefix(net: dict) -> tuple[bytes, bytes]:
    prefix = keys.ipam_prefix(net["metadata"]["uid"])
    return prefix, prefix_end(prefix)
