"""The rules JSON Schema cannot say: scope, and relations between fields.

Owns: the project/cluster scope of objects (a public Image is the only
cluster-scoped Image), and the cross-field rules of specs (a network's
gateway and DHCP range inside its CIDR, port ranges in order and only with
protocols that have ports, a FloatingIP's fixedAddress only with an
instance, server group rules only with anti-affinity), and a network's
cidr: at most /30, and never inside a special-purpose block
(``schemas.address_blocks``: loopback, link-local, multicast, ...), for
every writer, admins too. Overlapping such a block (``0.0.0.0/0``) is the
API server's to refuse to callers who are not admins: these rules cannot
know the caller. Each rule returns
``(path, message)`` pairs like the schema's errors.

Must never: import anything else from the project, or report a value the
schema already reports as malformed: a rule reads only values that parse,
so it is safe on an object that failed its schema.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from schemas import address_blocks
from schemas.messages import path_of, show

Errors = list[tuple[str, str]]


def _ipv4(value: Any) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _network(value: Any) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(value) if isinstance(value, str) and "/" in value else None
    except ValueError:
        return None


def _not_a_host(addr: ipaddress.IPv4Address, net: ipaddress.IPv4Network) -> str | None:
    """Why ``addr`` cannot be a host of ``net``; None if it can."""
    if addr not in net:
        return f"must be inside cidr {net}"
    if net.prefixlen <= 30 and addr in (net.network_address, net.broadcast_address):
        return f"must be a host address of cidr {net}, not its network or broadcast address"
    return None


def _network_rules(spec: dict[str, Any]) -> Errors:
    net = _network(spec.get("cidr"))
    if net is None:
        needing = [f for f in ("gateway", "dhcpRange", "dnsServers") if f in spec]
        return [(f"spec.{f}", "needs spec.cidr") for f in needing] if "cidr" not in spec else []
    if net.prefixlen > 30:
        return [
            (
                "spec.cidr",
                f"must leave room for hosts: a prefix length of at most 30 (got /{net.prefixlen})",
            )
        ]
    if (block := address_blocks.inside(net)) is not None:
        return [
            (
                "spec.cidr",
                f"must not lie inside {address_blocks.described([block])}: "
                "no guest's address works there",
            )
        ]
    errors: Errors = []
    gateway = _ipv4(spec.get("gateway"))
    if gateway is not None and (why := _not_a_host(gateway, net)):
        errors.append(("spec.gateway", why))
    dhcp = spec.get("dhcpRange")
    if not isinstance(dhcp, dict):
        return errors
    start, end = _ipv4(dhcp.get("start")), _ipv4(dhcp.get("end"))
    for field, addr in (("start", start), ("end", end)):
        if addr is not None and (why := _not_a_host(addr, net)):
            errors.append((f"spec.dhcpRange.{field}", why))
    if start is None or end is None:
        return errors
    if end < start:
        errors.append(("spec.dhcpRange.end", f"must not be below start ({start})"))
    elif "gateway" not in spec and start <= net.network_address + 1 <= end:
        errors.append(
            (
                "spec.dhcpRange",
                f"must not contain the gateway {net.network_address + 1} (the first host address, as spec.gateway is absent)",
            )
        )
    elif gateway is not None and start <= gateway <= end:
        errors.append(("spec.dhcpRange", f"must not contain the gateway {gateway}"))
    return errors


_PROTOCOLS = ("tcp", "udp", "icmp", "any")
_WITH_PORTS = ("tcp", "udp", "icmp")


def _port(value: Any) -> bool:
    return isinstance(value, int) and 1 <= value <= 65535


def _security_group_rules(spec: dict[str, Any]) -> Errors:
    rules = spec.get("rules")
    if not isinstance(rules, list):
        return []
    errors: Errors = []
    for i, rule in enumerate(rules):
        protocol = rule.get("protocol", "any") if isinstance(rule, dict) else None
        if protocol not in _PROTOCOLS and not (isinstance(protocol, int) and 0 <= protocol <= 255):
            continue
        at = path_of(["rules", i], "spec")
        low, high = rule.get("portRangeMin"), rule.get("portRangeMax")
        ports = [f for f in ("portRangeMin", "portRangeMax") if f in rule]
        if ports and protocol not in _WITH_PORTS:
            errors += [
                (
                    f"{at}.{f}",
                    f"is only allowed with protocol tcp, udp or icmp (protocol is {show(protocol)})",
                )
                for f in ports
            ]
        elif "portRangeMin" not in rule and "portRangeMax" in rule:
            errors.append((f"{at}.portRangeMin", "is required with portRangeMax"))
        elif protocol in ("tcp", "udp") and _port(low) and _port(high) and high < low:
            errors.append((f"{at}.portRangeMax", f"must not be below portRangeMin ({low})"))
    return errors


def _floating_ip_rules(spec: dict[str, Any]) -> Errors:
    if "fixedAddress" in spec and "instance" not in spec:
        return [("spec.instance", "is required with fixedAddress")]
    return []


def _server_group_rules(spec: dict[str, Any]) -> Errors:
    policy = spec.get("policy")
    if "rules" in spec and isinstance(policy, str) and policy != "anti-affinity":
        return [
            ("spec.rules", f"is only allowed with policy anti-affinity (policy is {show(policy)})")
        ]
    return []


_SPEC_RULES: dict[str, Callable[[dict[str, Any]], Errors]] = {
    "Network": _network_rules,
    "SecurityGroup": _security_group_rules,
    "FloatingIP": _floating_ip_rules,
    "ServerGroup": _server_group_rules,
}


def spec_rules(kind: str, spec: Any) -> Errors:
    """Cross-field errors of a spec of ``kind``."""
    rules = _SPEC_RULES.get(kind)
    return rules(spec) if rules is not None and isinstance(spec, dict) else []


def scope_rules(kind: str, scope: str, obj: dict[str, Any]) -> Errors:
    """Errors of ``metadata.project`` (present or absent) for a ``kind`` of ``scope``."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return []
    if scope == "project" and "project" not in meta:
        return [("metadata.project", f"is required: {kind} is project-scoped")]
    if scope == "cluster" and "project" in meta:
        return [("metadata.project", f"must be absent: {kind} is cluster-scoped")]
    spec = obj.get("spec")
    if kind == "Image" and "project" not in meta and isinstance(spec, dict):
        if "visibility" not in spec:
            return [
                (
                    "spec.visibility",
                    "must be public for an Image without metadata.project (it defaults to private)",
                )
            ]
        if spec["visibility"] != "public":
            return [
                (
                    "spec.visibility",
                    f"must be public for an Image without metadata.project (got {show(spec['visibility'])})",
                )
            ]
    return []
