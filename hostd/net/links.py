"""Linux bridges of desired's networks on one host, through pyroute2 (netlink).

Owns: each network's bridge (created when missing, marked with the alias
``desired <network uid>``, up, with exactly the addresses asked: the
gateway's and any floating IPs the host answers for; joined to a host
interface through a VLAN interface when the network has a VLAN), forwarding on it, the
namespace's ``bridge-nf-call-iptables`` (so that bridged traffic passes the
security-group chains), and deleting marked bridges nothing asks for.

Must never: change an interface that does not carry desired's alias (a
bridge of that name that is not desired's is an error, not taken over);
run outside the namespace thread it is called on.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from hostd.net import NetworkError

ALIAS_PREFIX = "desired "
_BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


class LinkError(NetworkError):
    """A bridge cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Bridge:
    name: str
    network_uid: str
    #: addresses with prefix length, the gateway's first ("10.0.0.1/24", "203.0.113.7/32")
    addresses: tuple[str, ...]
    #: (host interface, VLAN id): the network's traffic leaves tagged through that interface
    vlan: tuple[str, int] | None = None


def vlan_name(bridge: Bridge) -> str:
    """The VLAN interface joining a bridge to its host interface (at most 15 characters)."""
    return "dqv" + bridge.network_uid.replace("-", "")[:10]


def _sysctl(path: Path, value: str) -> bool:
    """Sets a sysctl of this thread's namespace; whether it changed."""
    if path.read_text().strip() == value:
        return False
    path.write_text(value)
    return True


def _ours(link: Any) -> str | None:
    alias = link.get_attr("IFLA_IFALIAS") or ""
    return alias[len(ALIAS_PREFIX) :] if alias.startswith(ALIAS_PREFIX) else None


def converge(wanted: list[Bridge]) -> list[tuple[str, str]]:
    """Makes the namespace's bridges of desired exactly ``wanted``; says what it changed
    (the bridge, what)."""
    changes: list[tuple[str, str]] = []
    try:
        with IPRoute() as ip:
            links = {link.get_attr("IFLA_IFNAME"): link for link in ip.get_links()}
            for bridge in wanted:
                changes += _bridge(ip, links.get(bridge.name), bridge)
            names = {b.name for b in wanted} | {vlan_name(b) for b in wanted if b.vlan}
            for name, link in links.items():
                if _ours(link) is not None and name not in names:
                    ip.link("del", index=link["index"])
                    changes.append((name, f"bridge {name} deleted"))
            if wanted and _BRIDGE_NF.exists() and _sysctl(_BRIDGE_NF, "1"):
                changes.append(("", "bridge-nf-call-iptables turned on"))
    except NetlinkError as exc:
        raise LinkError(f"netlink: {exc}") from None
    return changes


def _bridge(ip: IPRoute, link: Any, bridge: Bridge) -> list[tuple[str, str]]:
    changes: list[str] = []
    if link is None:
        ip.link("add", ifname=bridge.name, kind="bridge")
        changes.append(f"bridge {bridge.name} created")
        link = ip.get_links(ip.link_lookup(ifname=bridge.name)[0])[0]
    elif _ours(link) is None:
        raise LinkError(f"interface {bridge.name} exists and is not desired's")
    index = link["index"]
    alias = ALIAS_PREFIX + bridge.network_uid
    if link.get_attr("IFLA_IFALIAS") != alias:
        ip.link("set", index=index, IFLA_IFALIAS=alias)
    if link.get_attr("IFLA_OPERSTATE") == "DOWN" or not link["flags"] & 1:
        ip.link("set", index=index, state="up")
        if not changes:
            changes.append(f"bridge {bridge.name} brought up")
    have = {
        f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ip.get_addr(index=index, family=2)
    }
    want = set(bridge.addresses)
    for address in sorted(want - have):
        iface = ipaddress.IPv4Interface(address)
        ip.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        if not changes:
            changes.append(f"address {address} added to bridge {bridge.name}")
    for address in sorted(have - want):
        iface = ipaddress.IPv4Interface(address)
        ip.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        changes.append(f"address {address} removed from bridge {bridge.name}")
    _sysctl(Path(f"/proc/sys/net/ipv4/conf/{bridge.name}/forwarding"), "1")
    if bridge.vlan is not None:
        changes += _vlan(ip, bridge, index)
    return [(bridge.name, c) for c in changes]


def _vlan(ip: IPRoute, bridge: Bridge, master: int) -> list[str]:
    """The bridge's VLAN interface on its host interface: made, tagged, enslaved, up."""
    assert bridge.vlan is not None
    parent, vid = bridge.vlan
    found = ip.link_lookup(ifname=parent)
    if not found:
        raise LinkError(f"host interface {parent} of bridge {bridge.name}'s VLAN {vid} not found")
    name = vlan_name(bridge)
    have = ip.link_lookup(ifname=name)
    changes = []
    if have:
        link = ip.get_links(have[0])[0]
        info = (link.get_attr("IFLA_LINKINFO") or None) and link.get_attr("IFLA_LINKINFO").get_attr(
            "IFLA_INFO_DATA"
        )
        same = (
            link.get_attr("IFLA_LINK") == found[0] and info and info.get_attr("IFLA_VLAN_ID") == vid
        )
        if not same:
            ip.link("del", index=have[0])
            have = []
    if not have:
        ip.link("add", ifname=name, kind="vlan", link=found[0], vlan_id=vid)
        have = ip.link_lookup(ifname=name)
        ip.link("set", index=have[0], IFLA_IFALIAS=ALIAS_PREFIX + bridge.network_uid)
        changes.append(f"VLAN {vid} on {parent} joined to bridge {bridge.name}")
    link = ip.get_links(have[0])[0]
    if link.get_attr("IFLA_MASTER") != master or not link["flags"] & 1:
        ip.link("set", index=have[0], master=master, state="up")
    return changes
