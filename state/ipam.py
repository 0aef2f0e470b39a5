"""Addresses of networks, allocated to instances' ports race-free in etcd.

Owns: a Network's gateway and bridge name; which addresses of it may be
handed out (``Pool``: its ``dhcpRange``, else every host address after the
gateway, never the gateway nor an address of a special-purpose block such
as loopback or multicast, which only an admin's network can span), as
integer ranges, so that a /0 costs what a /30 does; the keys
``/desired/v1/ipam/<network uid>/<address>`` (each held by one port:
``{"instance": uid, "port": index, "mac": ...}``, created only where absent,
so two allocations of one address cannot both succeed); picking a free
address by walking the pool past the held ones (at most as many steps as
addresses are held); a port's MAC (``fa:16:3e`` and three bytes of a digest
of instance and port, as OpenStack's prefix); finding a port's allocation
again, and releasing an instance's addresses.

Must never: hand one address to two ports; release an address another
instance holds; list a network's addresses (the cost would follow its
prefix, not its ports).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
from dataclasses import dataclass
from typing import Any

from schemas import address_blocks
from state import keys
from state.envelope import Obj
from state.errors import BadRequest, Conflict
from state.etcd import Delete, EtcdClient, Put, absent, mod_revision_is, prefix_end

#: tries of an allocation that other allocations keep beating to the address
_TRIES = 20


class AddressInUse(Conflict):
    """The address asked for is held by another port."""


class PoolExhausted(Conflict):
    """No address of the network is free."""


class NoSubnet(BadRequest):
    """The network has no addresses (no cidr) yet."""


@dataclass(frozen=True)
class Port:
    network: str
    address: str
    mac: str


def mac_of(instance_uid: str, port: int) -> str:
    digest = hashlib.sha256(f"{instance_uid}/{port}".encode()).digest()
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])


def gateway(spec: dict[str, Any]) -> ipaddress.IPv4Address:
    """A network's gateway: the one its spec names, else the first host address."""
    net = ipaddress.IPv4Network(spec["cidr"], strict=False)
    return ipaddress.IPv4Address(spec["gateway"]) if spec.get("gateway") else net[1]


def bridge_name(network: Obj) -> str:
    """The Linux bridge carrying a network on hosts: its spec's, else one named after
    its uid (at most 15 characters, as Linux allows)."""
    return (
        network["spec"].get("bridge") or "dqbr-" + network["metadata"]["uid"].replace("-", "")[:10]
    )


def floating_address(fip: Obj) -> str | None:
    """A floating IP's address: the one asked for, else the one its pool gave it."""
    return fip["spec"].get("address") or (fip.get("status") or {}).get("address")


def floating_port(fip_spec: dict[str, Any], ports: list[dict[str, Any]]) -> int | None:
    """Which of its instance's ports a floating IP maps to: the one holding its
    ``fixedAddress``, else the first; None when there is no such port."""
    fixed = fip_spec.get("fixedAddress")
    for index, port in enumerate(ports):
        if fixed in (None, port["address"]):
            return index
    return None


@dataclass(frozen=True)
class Pool:
    """The addresses a network hands out: integer ranges, never a list of addresses, so
    that asking anything of a /0 costs what it costs of a /30.

    The addresses are its ``dhcpRange``, else every host address after the gateway, but
    the gateway and the special-purpose blocks (``schemas.address_blocks``: only an
    admin's network can span one) -- at most seven ranges."""

    #: (first, last) of each range, as integers, inclusive, in order, disjoint, none empty
    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Pool:
        net = ipaddress.IPv4Network(spec["cidr"], strict=False)
        gw = int(gateway(spec))
        if spec.get("dhcpRange"):
            first = int(ipaddress.IPv4Address(spec["dhcpRange"]["start"]))
            last = int(ipaddress.IPv4Address(spec["dhcpRange"]["end"]))
        else:
            first, last = gw + 1, int(net.broadcast_address) - 1
        hosts = (int(net.network_address) + 1, int(net.broadcast_address) - 1)
        ranges = [(max(first, hosts[0]), min(last, hosts[1]))]
        holes = [(gw, gw)] + [
            (int(b.network_address), int(b.broadcast_address))
            for b, _ in address_blocks.overlapped(net)
        ]
        for low, high in holes:
            ranges = [
                part
                for lo, hi in ranges
                for part in ((lo, min(hi, low - 1)), (max(lo, high + 1), hi))
                if part[0] <= part[1]
            ]
        return cls(tuple(ranges))

    @property
    def size(self) -> int:
        """How many addresses it has."""
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address):
            return False
        return any(lo <= int(address) <= hi for lo, hi in self.ranges)

    def bounds(self) -> list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]]:
        """(first, last) address of each range: Neutron's allocation pools."""
        return [(ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi)) for lo, hi in self.ranges]

    def first(self) -> ipaddress.IPv4Address | None:
        return ipaddress.IPv4Address(self.ranges[0][0]) if self.ranges else None

    def free(self, taken: set[ipaddress.IPv4Address], count: int) -> list[ipaddress.IPv4Address]:
        """The first ``count`` addresses not in ``taken``, in order: a walk that skips each
        taken address at most once, so it costs ``count + len(taken)`` steps at most,
        whatever the pool's size."""
        held = {int(a) for a in taken}
        found: list[ipaddress.IPv4Address] = []
        for lo, hi in self.ranges:
            address = lo
            while address <= hi and len(found) < count:
                if address not in held:
                    found.append(ipaddress.IPv4Address(address))
                address += 1
        return found

    def used(self, taken: set[ipaddress.IPv4Address]) -> int:
        """How many of ``taken`` are its addresses (fixed ones may lie outside)."""
        return sum(a in self for a in taken)


def _fixed(spec: dict[str, Any], wanted: str) -> ipaddress.IPv4Address:
    """An address asked for: a host address of the network, not its gateway, none of a
    special-purpose block (outside the pool otherwise is fine)."""
    net = ipaddress.IPv4Network(spec["cidr"], strict=False)
    try:
        if not isinstance(wanted, str):
            raise ValueError(wanted)
        address = ipaddress.IPv4Address(wanted)
    except ValueError:
        raise BadRequest(f"{wanted!r} is not an IPv4 address") from None
    if address not in net or address in (net.network_address, net.broadcast_address):
        raise BadRequest(f"{wanted} is not a host address of {spec['cidr']}")
    if address == gateway(spec):
        raise BadRequest(f"{wanted} is the gateway of {spec['cidr']}")
    for block, what in address_blocks.SPECIAL_BLOCKS:
        if address in block:
            raise BadRequest(f"{wanted} is in {block} ({what}): no guest's address")
    return address


async def held(etcd: EtcdClient, network_uid: str) -> dict[str, dict[str, Any]]:
    """The addresses allocated on a network, with who holds each."""
    prefix = keys.ipam_prefix(network_uid)
    res = await etcd.range(prefix, prefix_end(prefix))
    return {keys.last_segment(kv.key): json.loads(kv.value) for kv in res.kvs}


async def used(etcd: EtcdClient, network_uid: str) -> int:
    """How many addresses are allocated on a network (counted by etcd, none read)."""
    prefix = keys.ipam_prefix(network_uid)
    return (await etcd.range(prefix, prefix_end(prefix), count_only=True)).count


async def allocate(
    etcd: EtcdClient, network: Obj, instance_uid: str, port: int, wanted: str | None = None
) -> Port:
    """The address of the instance's port on ``network``: the one it holds already, else
    ``wanted`` (AddressInUse when held by another port), else a free one of the pool
    (PoolExhausted when none is)."""
    uid, spec = network["metadata"]["uid"], network["spec"]
    if not spec.get("cidr"):
        raise NoSubnet(f"network {network['metadata']['name']} has no subnet (cidr)")
    mac = mac_of(instance_uid, port)
    value = json.dumps({"instance": instance_uid, "port": port, "mac": mac}).encode()
    for _ in range(_TRIES):
        taken = await held(etcd, uid)
        for address, holder in taken.items():
            if (holder.get("instance"), holder.get("port")) == (instance_uid, port):
                return Port(network["metadata"]["name"], address, mac)
        if wanted is not None:
            candidate = _fixed(spec, wanted)
        else:
            free = Pool.of(spec).free({ipaddress.IPv4Address(a) for a in taken}, 8)
            if not free:
                raise PoolExhausted(
                    f"no free address on network {network['metadata']['name']} ({spec['cidr']})"
                )
            # a random one of the first few: racing allocations rarely pick the same
            candidate = random.choice(free)
        key = keys.ipam(uid, str(candidate))
        res = await etcd.txn([absent(key)], [Put(key, value)])
        if res.succeeded:
            return Port(network["metadata"]["name"], str(candidate), mac)
        if wanted is not None:
            raise AddressInUse(
                f"address {wanted} is in use on network {network['metadata']['name']}"
            )
    raise Conflict(f"allocations on network {network['metadata']['name']} kept racing; retry")


async def release(
    etcd: EtcdClient, network_uid: str, instance_uid: str, keep: frozenset[str] = frozenset()
) -> int:
    """Frees the addresses the instance holds on the network but those in ``keep``; how
    many it freed."""
    prefix = keys.ipam_prefix(network_uid)
    res = await etcd.range(prefix, prefix_end(prefix))
    freed = 0
    for kv in res.kvs:
        if json.loads(kv.value).get("instance") != instance_uid:
            continue
        if keys.last_segment(kv.key) in keep:
            continue
        done = await etcd.txn([mod_revision_is(kv.key, kv.mod_revision)], [Delete(kv.key)])
        freed += int(done.succeeded)
    return freed


async def networks(etcd: EtcdClient) -> set[str]:
    """The uids of the networks any address is held on."""
    root = keys.ipam_root()
    res = await etcd.range(root, prefix_end(root), keys_only=True)
    return {kv.key[len(root) :].split(b"/", 1)[0].decode() for kv in res.kvs}


async def drop_network(etcd: EtcdClient, network_uid: str) -> int:
    """Frees every address of a network that is gone; how many there were."""
    prefix = keys.ipam_prefix(network_uid)
    res = await etcd.range(prefix, prefix_end(prefix), count_only=True)
    await etcd.txn([], [Delete(prefix, prefix_end(prefix))])
    return res.count
