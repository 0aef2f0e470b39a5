"""hostd's network driver: a host's bridges, DHCP, firewall and metadata proxy, converged
together from its assignments.

Inputs: every assignment of the host, each with ``network`` (rendered by the
scheduler): its ports (network, bridge, CIDR, gateway, DNS servers, address,
MAC), the security-group rules that apply to them (remote groups already
expanded to addresses) and its floating IPs.

Outputs: bridges (``links``), one dnsmasq per network (``dhcp``), the
chains of ``firewall`` in the kernel (``iptables``) and the metadata proxy's
listeners, all in the guests' namespace; the list of drift it repaired, for
the agent to report.

Invariants: one converge runs at a time, and a call returns only after a
converge that began after it (calls made meanwhile share one); what nothing
asks for any more is removed (bridges, dnsmasqs, chains, listeners); whether
the last converge covered an assignment as it is now is known without one.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hostd.net import dhcp, firewall, links
from hostd.net.iptables import Iptables
from hostd.net.metadata_proxy import MetadataProxy
from hostd.net.netns import Namespace
from hostd.render import Interface


def _footprint(a: dict[str, Any]) -> str:
    """What of an assignment ``plan`` reads."""
    return json.dumps([a.get("network"), a.get("hostname") or a["name"]], sort_keys=True)


@functools.lru_cache(maxsize=1024)
def _prefix(cidr: str) -> int:
    return ipaddress.IPv4Network(cidr, strict=False).prefixlen


def _allows(rules: list[dict[str, Any]]) -> tuple[firewall.Allow, ...]:
    return tuple(
        firewall.Allow(
            protocol=str(r.get("protocol", "any")),
            port_min=r.get("portRangeMin"),
            port_max=r.get("portRangeMax"),
            remote=r.get("remoteCidr", "0.0.0.0/0"),
        )
        for r in rules
    )


def interfaces(a: dict[str, Any]) -> tuple[Interface, ...]:
    """The domain's network interfaces of an assignment."""
    return tuple(
        Interface(mac=p["mac"], bridge=p["bridge"], target=firewall.tap_name(a["uid"], p["index"]))
        for p in a.get("network", {}).get("ports", [])
    )


class HostNetwork:
    def __init__(
        self,
        ns: Namespace,
        metadata_port: int,
        metadata_url: str = "",
        secret: str = "",
    ) -> None:
        """``metadata_url``: the metadata service guests' requests are passed on to, signed
        with ``secret`` (empty: no metadata proxy)."""
        self.ns = ns
        self.metadata_port = metadata_port
        self.proxy = (
            MetadataProxy(ns, metadata_port, metadata_url, secret, self.caller)
            if metadata_url
            else None
        )
        self.dhcp = dhcp.Dnsmasq(ns)
        self.iptables = Iptables()
        self._lock = asyncio.Lock()
        self._asked = 0
        self._done = 0
        #: bridges set up by an earlier converge (a change to one of them is drift)
        self._known: set[str] = set()
        #: (gateway, address) -> instance uid, for the metadata proxy
        self._callers: dict[tuple[str, str], str] = {}
        #: uid -> what of its assignment the last converge took in (``_footprint``)
        self._included: dict[str, str] = {}

    def covers(self, uid: str, a: dict[str, Any] | None) -> bool:
        """Whether the last converge took in the assignment ``a`` of ``uid`` as it is now
        (None: that it left ``uid`` out), so that converging again would change nothing of
        it; a resync still converges, for drift."""
        return self._included.get(uid) == (None if a is None else _footprint(a))

    def caller(self, gateway: str, address: str) -> str | None:
        return self._callers.get((gateway, address))

    async def sync(self, assignments: Callable[[], list[dict[str, Any]]]) -> list[str]:
        """Converges to what ``assignments()`` holds when the converge starts; the drift
        it repaired."""
        self._asked += 1
        mine = self._asked
        async with self._lock:
            if self._done >= mine:
                return []  # a converge that began after this call has finished
            started = self._asked
            repaired = await self._converge(assignments())
            self._done = started
            return repaired

    async def close(self) -> None:
        """Stops the metadata proxy; bridges, DHCP and firewall stay for the guests."""
        if self.proxy is not None:
            await self.proxy.close()
        self.ns.close()

    async def teardown(self) -> None:
        """Removes everything this driver made: listeners, dnsmasqs (and their files),
        chains, bridges."""
        async with self._lock:
            await self._converge([])
            await asyncio.to_thread(self.dhcp.stop_all)

    async def _converge(self, assignments: list[dict[str, Any]]) -> list[str]:
        want = plan(assignments, self.metadata_port)
        self._included = {a["uid"]: _footprint(a) for a in assignments}
        changed = await self.ns.run(links.converge, want.bridges)
        repaired = [m for b, m in changed if b in self._known]
        self._known = {b.name for b in want.bridges}
        repaired += [m for _, m in await asyncio.to_thread(self.dhcp.converge, want.dhcp)]
        chains = firewall.render(want.rules) if want.rules.ports or want.rules.floating else {}
        repaired += await self.ns.run(self.iptables.converge, chains)
        self._callers = want.callers
        if self.proxy is not None:
            await self.proxy.serve({d.gateway for d in want.dhcp})
        return repaired


@dataclass(frozen=True)
class Plan:
    """What a host's network must be, from its assignments."""

    bridges: list[links.Bridge]
    dhcp: list[dhcp.DhcpNetwork]
    rules: firewall.HostRules
    #: (gateway, address) -> instance uid, for the metadata proxy
    callers: dict[tuple[str, str], str]


def plan(assignments: list[dict[str, Any]], metadata_port: int) -> Plan:
    """The bridges (with the gateway's and floating IPs' addresses), DHCP hosts and
    firewall input of a host's assignments."""
    bridges: dict[str, links.Bridge] = {}
    gateways: dict[str, str] = {}
    dhcp_hosts: dict[str, list[tuple[str, str, str]]] = {}
    nets: dict[str, dict[str, Any]] = {}
    ports: list[firewall.PortFilter] = []
    floating: list[firewall.FloatingNat] = []
    extra: dict[str, set[str]] = {}
    callers: dict[tuple[str, str], str] = {}
    for a in assignments:
        net = a.get("network") or {}
        egress = net.get("egress")
        for p in net.get("ports", []):
            prefix = _prefix(p["cidr"])
            vlan = p.get("vlan")
            bridges[p["bridge"]] = links.Bridge(
                p["bridge"],
                p["networkUid"],
                (f"{p['gateway']}/{prefix}",),
                (vlan["interface"], vlan["id"]) if vlan else None,
            )
            gateways[p["bridge"]] = p["gateway"]
            nets[p["bridge"]] = p
            hostname = a.get("hostname") or a["name"]
            dhcp_hosts.setdefault(p["bridge"], []).append((p["mac"], p["address"], hostname))
            callers[(p["gateway"], p["address"])] = a["uid"]
            ports.append(
                firewall.PortFilter(
                    tap=firewall.tap_name(a["uid"], p["index"]),
                    bridge=p["bridge"],
                    mac=p["mac"],
                    address=p["address"],
                    gateway=p["gateway"],
                    ingress=_allows(net.get("ingress", [])),
                    egress=None if egress is None else _allows(egress),
                )
            )
        for f in net.get("floatingIps", []):
            prefix = _prefix(f["cidr"])
            base = bridges.get(f["bridge"])
            vlan = f.get("vlan")
            bridges[f["bridge"]] = links.Bridge(
                f["bridge"],
                f["networkUid"],
                base.addresses if base else (f"{f['gateway']}/{prefix}",),
                (vlan["interface"], vlan["id"]) if vlan else None,
            )
            gateways.setdefault(f["bridge"], f["gateway"])
            extra.setdefault(f["bridge"], set()).add(f"{f['address']}/32")
            floating.append(firewall.FloatingNat(f["address"], f["fixedAddress"], f["bridge"]))
    return Plan(
        bridges=[
            links.Bridge(
                b.name, b.network_uid, (*b.addresses, *sorted(extra.get(name, ()))), b.vlan
            )
            for name, b in sorted(bridges.items())
        ],
        dhcp=[
            dhcp.DhcpNetwork(
                bridge=name,
                cidr=nets[name]["cidr"],
                gateway=nets[name]["gateway"],
                dns_servers=tuple(nets[name].get("dnsServers", [])),
                hosts=tuple(hosts),
            )
            for name, hosts in sorted(dhcp_hosts.items())
        ],
        rules=firewall.HostRules(
            bridges=gateways if ports or floating else {},
            ports=tuple(ports),
            floating=tuple(floating),
            metadata_port=metadata_port,
        ),
        callers=callers,
    )
