"""A network's pool by arithmetic: the same addresses as listing them would give on small
networks, nothing of a special-purpose block on big ones, the same cost for a /0 as for a
/30; and who may make which network (the kind's rules for everyone, ``check_cidr`` for
callers who are not admins)."""

from __future__ import annotations

import re
import time
from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

import schemas
from apiserver.netops import SpecialBlock, check_cidr
from schemas.address_blocks import SPECIAL_BLOCKS
from state.ipam import Pool, gateway


def listed(spec: dict) -> list[IPv4Address]:
    """The pool as the old code listed it: what ``Pool`` must equal (on small networks)."""
    net = IPv4Network(spec["cidr"])
    gw = gateway(spec)
    if spec.get("dhcpRange"):
        first = IPv4Address(spec["dhcpRange"]["start"])
        last = IPv4Address(spec["dhcpRange"]["end"])
    else:
        first, last = gw + 1, net.broadcast_address - 1
    return [
        IPv4Address(a)
        for a in range(int(first), int(last) + 1)
        if IPv4Address(a) in net
        and IPv4Address(a) != gw
        and not any(IPv4Address(a) in block for block, _ in SPECIAL_BLOCKS)
    ]


def expanded(pool: Pool) -> list[IPv4Address]:
    return [IPv4Address(a) for lo, hi in pool.ranges for a in range(lo, hi + 1)]


@st.composite
def small_specs(draw: st.DrawFn) -> dict:
    """A valid Network spec of /22 to /30, anywhere (special blocks included), with or
    without a gateway and a DHCP range."""
    prefix = draw(st.integers(22, 30))
    net = IPv4Network((draw(st.integers(0, 2**32 - 1)), prefix), strict=False)
    hosts = (int(net.network_address) + 1, int(net.broadcast_address) - 1)
    spec: dict = {"cidr": str(net)}
    if draw(st.booleans()):
        spec["gateway"] = str(IPv4Address(draw(st.integers(*hosts))))
    if draw(st.booleans()):
        start = draw(st.integers(*hosts))
        spec["dhcpRange"] = {
            "start": str(IPv4Address(start)),
            "end": str(IPv4Address(draw(st.integers(start, hosts[1])))),
        }
    return spec


@given(small_specs(), st.sets(st.integers(0, 1100), max_size=40), st.integers(1, 10))
def test_the_pool_is_what_listing_gave_and_free_skips_the_held(
    spec: dict, held_offsets: set[int], count: int
) -> None:
    pool = Pool.of(spec)
    want = listed(spec)
    assert expanded(pool) == want
    assert pool.size == len(want)
    assert [a for a, _ in pool.bounds()] == [IPv4Address(lo) for lo, _ in pool.ranges]
    assert pool.first() == (want[0] if want else None)
    net = IPv4Network(spec["cidr"])
    taken = {net.network_address + o for o in held_offsets if o < net.num_addresses}
    assert pool.free(taken, count) == [a for a in want if a not in taken][:count]
    assert pool.used(taken) == len([a for a in want if a in taken])
    assert all((a in pool) == (a in want) for a in taken)


@given(st.integers(0, 2**32 - 1), st.integers(0, 21))
def test_big_pools_hold_no_special_address_nor_the_gateway(base: int, prefix: int) -> None:
    net = IPv4Network((base, prefix), strict=False)
    spec = {"cidr": str(net)}
    pool = Pool.of(spec)
    assert len(pool.ranges) <= 7
    for lo, hi in pool.ranges:
        assert lo <= hi
        assert int(net.network_address) < lo and hi < int(net.broadcast_address)
        assert not lo <= int(gateway(spec)) <= hi
        for block, _ in SPECIAL_BLOCKS:
            assert hi < int(block.network_address) or lo > int(block.broadcast_address)
    assert all(a < b for (_, a), (b, _) in zip(pool.ranges, pool.ranges[1:], strict=False))
    first = pool.free(set(), 3)
    assert first == expanded_head(pool, 3)


def expanded_head(pool: Pool, n: int) -> list[IPv4Address]:
    out: list[IPv4Address] = []
    for lo, hi in pool.ranges:
        out += [IPv4Address(a) for a in range(lo, min(hi, lo + n) + 1)]
    return out[:n]


def test_a_slash_0_costs_what_a_slash_30_does() -> None:
    def cost(cidr: str) -> float:
        t0 = time.perf_counter()
        for _ in range(200):
            pool = Pool.of({"cidr": cidr})
            pool.bounds(), pool.size, pool.free({IPv4Address("1.0.0.0")}, 8)
        return time.perf_counter() - t0

    cost("10.0.0.0/30")  # warm up
    assert cost("0.0.0.0/0") < 3 * cost("10.0.0.0/30") + 0.01
    pool = Pool.of({"cidr": "0.0.0.0/0"})
    assert [(str(a), str(b)) for a, b in pool.bounds()] == [
        ("1.0.0.0", "126.255.255.255"),
        ("128.0.0.0", "169.253.255.255"),
        ("169.255.0.0", "223.255.255.255"),
    ]
    assert pool.size == 2**32 - 2 * 2**24 - 2**16 - 2 * 2**28  # less 0/8, 127/8, 169.254/16, 224/3
    assert pool.free({IPv4Address("1.0.0.0"), IPv4Address("1.0.0.2")}, 3) == [
        IPv4Address("1.0.0.1"),
        IPv4Address("1.0.0.3"),
        IPv4Address("1.0.0.4"),
    ]


def _network(cidr: str) -> dict:
    return {"kind": "Network", "metadata": {"name": "n", "project": "demo"}, "spec": {"cidr": cidr}}


@pytest.mark.parametrize(
    ("cidr", "block"),
    [
        ("127.0.0.0/24", "127.0.0.0/8"),
        ("127.0.0.0/8", "127.0.0.0/8"),
        ("0.0.0.0/24", "0.0.0.0/8"),
        ("169.254.0.0/16", "169.254.0.0/16"),
        ("224.0.0.0/4", "224.0.0.0/4"),
        ("239.1.0.0/16", "224.0.0.0/4"),
        ("240.0.0.0/24", "240.0.0.0/4"),
        ("255.255.255.252/30", "240.0.0.0/4"),
    ],
)
def test_no_writer_makes_a_network_inside_a_special_block(cidr: str, block: str) -> None:
    with pytest.raises(schemas.SchemaError) as info:
        schemas.validate(_network(cidr))
    ((path, message),) = info.value.errors
    assert path == "spec.cidr" and message.startswith(f"must not lie inside {block} (")


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "0.0.0.0/1", "96.0.0.0/3", "10.0.0.0/8"])
def test_the_kind_takes_networks_that_span_special_blocks(cidr: str) -> None:
    schemas.validate(_network(cidr))
    check_cidr(None, {"cidr": cidr}, admin=True)


@pytest.mark.parametrize(
    ("cidr", "blocks"),
    [
        ("0.0.0.0/0", "0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4, 240.0.0.0/4"),
        ("96.0.0.0/3", "127.0.0.0/8"),
        ("127.0.0.0/24", "127.0.0.0/8"),
        ("169.254.169.0/24", "169.254.0.0/16"),
        ("192.0.0.0/2", "224.0.0.0/4, 240.0.0.0/4"),
    ],
)
def test_members_may_not_even_overlap_one(cidr: str, blocks: str) -> None:
    with pytest.raises(SpecialBlock) as info:
        check_cidr(None, {"cidr": cidr}, admin=False)
    assert re.findall(r"\d+\.\d+\.\d+\.\d+/\d+", info.value.message) == [
        cidr,
        *blocks.split(", "),
    ]


def test_members_keep_what_an_admin_made_and_make_ordinary_networks() -> None:
    made = _network("0.0.0.0/0")
    check_cidr(made, {"cidr": "0.0.0.0/0", "dnsServers": ["10.0.0.2"]}, admin=False)
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "1.0.0.0/8"):
        check_cidr(None, {"cidr": cidr}, admin=False)
