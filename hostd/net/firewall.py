"""The iptables rules of one host, rendered from its instances' ports: pure data.

Owns: the chains desired owns (``desired-*`` and ``dsd-*``) and their rules,
in the tables ``filter`` and ``nat``, and the jumps to them from the built-in
chains:

- ``filter/desired-fwd`` (first in FORWARD): traffic routed out of one of
  desired's bridges goes only to another of them (``desired-guard``); traffic
  to or from a port goes through ``desired-sg``, which sends it through the
  port's ingress chain ``dsd-i-<tap>`` and egress chain ``dsd-o-<tap>`` (each
  returns what it allows and drops the rest) and then accepts it;
- ``dsd-o-<tap>``: DHCP requests, then anti-spoofing (only the port's MAC and
  address), then the egress rules (all egress when the port has none);
- ``dsd-i-<tap>``: replies, then the ingress rules, then drop;
- ``filter/desired-in`` (first in INPUT): guests' traffic to the host goes
  through its egress chain; from a guest the host takes only DHCP, the
  metadata proxy and ICMP;
- ``nat/desired-pre`` (first in PREROUTING): ``169.254.169.254:80`` to the
  metadata proxy on the network's gateway, floating IPs to fixed ones;
- ``nat/desired-post`` (first in POSTROUTING): a fixed address leaving by the
  floating IP's network goes out as the floating IP.

Must never: accept traffic that is not to or from a port of desired; let
traffic from desired's bridges out through any other interface.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

METADATA_ADDRESS = "169.254.169.254"
#: chains whose names start so are desired's: created, rewritten and deleted at will
OWNED_PREFIXES = ("desired-", "dsd-")
#: prefix of instance ports' tap devices (libvirt creates them with these names)
TAP_PREFIX = "dq"
#: (table, built-in chain) -> desired's chain jumped to first
JUMPS = {
    ("filter", "FORWARD"): "desired-fwd",
    ("filter", "INPUT"): "desired-in",
    ("nat", "PREROUTING"): "desired-pre",
    ("nat", "POSTROUTING"): "desired-post",
}

Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class IptRule:
    """One rule: the addresses, interfaces and protocol it matches, its matches and target."""

    target: str
    target_args: Params = ()
    src: str = ""
    dst: str = ""
    protocol: str = ""
    in_iface: str = ""
    out_iface: str = ""
    matches: tuple[tuple[str, Params], ...] = ()


@dataclass(frozen=True)
class Allow:
    """One allowed flow of a security group rule, its remote group already expanded to CIDRs."""

    protocol: str = "any"
    port_min: int | None = None
    port_max: int | None = None
    remote: str = "0.0.0.0/0"


@dataclass(frozen=True)
class PortFilter:
    """What the firewall needs of an instance's port."""

    tap: str
    bridge: str
    mac: str
    address: str
    gateway: str
    ingress: tuple[Allow, ...] = ()
    #: None: every egress flow is allowed
    egress: tuple[Allow, ...] | None = None


@dataclass(frozen=True)
class FloatingNat:
    floating: str
    fixed: str
    #: the bridge of the floating IP's (external) network
    bridge: str


@dataclass(frozen=True)
class HostRules:
    """Everything the firewall of one host is rendered from."""

    #: bridge -> its gateway address, for every network with a port here
    bridges: dict[str, str] = field(default_factory=dict)
    ports: tuple[PortFilter, ...] = ()
    floating: tuple[FloatingNat, ...] = ()
    #: port of the metadata proxy on each gateway
    metadata_port: int = 0


def tap_name(instance_uid: str, index: int) -> str:
    """The tap device of an instance's port: at most 15 characters."""
    return f"{TAP_PREFIX}{instance_uid.replace('-', '')[:10]}-{index}"


def _physdev(**params: str) -> tuple[str, Params]:
    return ("physdev", tuple((k.replace("_", "-"), v) for k, v in params.items()))


def _state(states: str) -> tuple[str, Params]:
    return ("state", (("state", states),))


def _allow(a: Allow, peer: str) -> IptRule:
    """``peer`` is "src" for ingress, "dst" for egress."""
    matches: list[tuple[str, Params]] = []
    protocol = "" if a.protocol == "any" else a.protocol
    if a.protocol in ("tcp", "udp") and a.port_min is not None:
        last = a.port_max if a.port_max is not None else a.port_min
        ports = str(a.port_min) if last == a.port_min else f"{a.port_min}:{last}"
        matches.append((a.protocol, (("dport", ports),)))
    elif a.protocol == "icmp" and a.port_min is not None:
        kind = str(a.port_min) if a.port_max is None else f"{a.port_min}/{a.port_max}"
        matches.append(("icmp", (("icmp-type", kind),)))
    remote = "" if a.remote in ("0.0.0.0/0", "") else a.remote
    return IptRule(
        "RETURN",
        protocol=protocol,
        matches=tuple(matches),
        src=remote if peer == "src" else "",
        dst=remote if peer == "dst" else "",
    )


@functools.lru_cache(maxsize=8192)
def _ingress(p: PortFilter) -> tuple[IptRule, ...]:
    """A port's ingress chain (built once per port as it is: resyncs render it again)."""
    return (
        IptRule("RETURN", matches=(_state("RELATED,ESTABLISHED"),)),
        IptRule("DROP", matches=(_state("INVALID"),)),
        IptRule(
            "RETURN",
            src=f"{p.gateway}/32",
            protocol="udp",
            matches=(("udp", (("sport", "67"), ("dport", "68"))),),
        ),
        *(_allow(a, "src") for a in p.ingress),
        IptRule("DROP"),
    )


@functools.lru_cache(maxsize=8192)
def _egress(p: PortFilter, metadata_port: int) -> tuple[IptRule, ...]:
    """A port's egress chain (built once per port as it is)."""
    rules = (
        IptRule(
            "RETURN",
            protocol="udp",
            matches=(
                ("udp", (("sport", "68"), ("dport", "67"))),
                ("mac", (("mac-source", p.mac),)),
            ),
        ),
        IptRule("DROP", src=f"!{p.address}/32"),
        IptRule("DROP", matches=(("mac", (("mac-source", f"!{p.mac}"),)),)),
        IptRule("RETURN", matches=(_state("RELATED,ESTABLISHED"),)),
        IptRule("DROP", matches=(_state("INVALID"),)),
    )
    if p.egress is None:
        return (*rules, IptRule("RETURN"))
    return (
        *rules,
        IptRule(
            "RETURN",
            dst=f"{p.gateway}/32",
            protocol="tcp",
            matches=(("tcp", (("dport", str(metadata_port)),)),),
        ),
        *(_allow(a, "dst") for a in p.egress),
        IptRule("DROP"),
    )


def render(h: HostRules) -> dict[str, dict[str, list[IptRule]]]:
    """table -> chain -> rules, for every chain desired owns on the host."""
    ours = sorted(h.bridges)
    fwd = [IptRule("desired-guard", in_iface=b) for b in ours]
    fwd += [
        IptRule(
            "desired-sg", matches=(_physdev(physdev_out=f"{TAP_PREFIX}+", physdev_is_bridged=""),)
        ),
        IptRule("desired-sg", matches=(_physdev(physdev_in=f"{TAP_PREFIX}+"),)),
        *(IptRule("desired-sg", out_iface=b) for b in ours),
    ]
    guard = [*(IptRule("RETURN", out_iface=b) for b in ours), IptRule("DROP")]
    sg: list[IptRule] = []
    host_in: list[IptRule] = []
    filter_chains: dict[str, list[IptRule]] = {}
    for p in sorted(h.ports, key=lambda p: p.tap):
        i_chain, o_chain = f"dsd-i-{p.tap}", f"dsd-o-{p.tap}"
        sg += [
            IptRule(i_chain, matches=(_physdev(physdev_out=p.tap, physdev_is_bridged=""),)),
            IptRule(i_chain, dst=f"{p.address}/32", out_iface=p.bridge),
            IptRule(o_chain, matches=(_physdev(physdev_in=p.tap),)),
        ]
        host_in.append(IptRule(o_chain, matches=(_physdev(physdev_in=p.tap),)))
        filter_chains[i_chain] = list(_ingress(p))
        filter_chains[o_chain] = list(_egress(p, h.metadata_port))
    sg.append(IptRule("ACCEPT"))
    for b in ours:
        host_in += [
            IptRule("ACCEPT", in_iface=b, protocol="udp", matches=(("udp", (("dport", "67"),)),)),
            IptRule(
                "ACCEPT",
                in_iface=b,
                dst=f"{h.bridges[b]}/32",
                protocol="tcp",
                matches=(("tcp", (("dport", str(h.metadata_port)),)),),
            ),
            IptRule("ACCEPT", in_iface=b, protocol="icmp"),
            IptRule("DROP", in_iface=b),
        ]
    pre = [
        IptRule(
            "DNAT",
            (("to-destination", f"{h.bridges[b]}:{h.metadata_port}"),),
            in_iface=b,
            dst=f"{METADATA_ADDRESS}/32",
            protocol="tcp",
            matches=(("tcp", (("dport", "80"),)),),
        )
        for b in ours
    ]
    post: list[IptRule] = []
    for f in sorted(h.floating, key=lambda f: f.floating):
        pre.append(IptRule("DNAT", (("to-destination", f.fixed),), dst=f"{f.floating}/32"))
        post.append(
            IptRule("SNAT", (("to-source", f.floating),), src=f"{f.fixed}/32", out_iface=f.bridge)
        )
    return {
        "filter": {
            "desired-fwd": fwd,
            "desired-guard": guard,
            "desired-sg": sg,
            "desired-in": host_in,
            **filter_chains,
        },
        "nat": {"desired-pre": pre, "desired-post": post},
    }
