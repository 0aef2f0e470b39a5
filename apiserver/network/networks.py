"""Neutron's networks, subnets and ports, over desired's Networks and instances' ports.

A Neutron network is a Network; its (one) subnet is the Network's cidr,
gateway, DHCP range and DNS servers, under an id derived from the network's;
ports are read-only views of instances' ports (``status.ports``).

Owns: the handlers and views of ``/v2.0/networks``, ``/v2.0/subnets`` and
``/v2.0/ports``.

Must never: change a network of another project for a caller who is not an
admin; make a network shared or external for one who is not.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from apiserver import netops
from apiserver.compute.names import is_object_name, object_name_for
from apiserver.network.common import (
    NeutronFault,
    Projects,
    acting_project,
    body_of,
    caller,
    is_admin,
    listing,
    may_write,
    one,
    sees,
    standard,
    store_of,
)
from state import ipam
from state.envelope import Obj
from state.errors import NotFound


def network_view(net: Obj, projects: Projects) -> dict[str, Any]:
    spec = net["spec"]
    return {
        "id": net["metadata"]["uid"],
        "name": spec.get("displayName") or net["metadata"]["name"],
        "admin_state_up": True,
        "status": "ACTIVE",
        "subnets": [netops.subnet_id(net)] if spec.get("cidr") else [],
        "shared": bool(spec.get("shared")),
        "router:external": bool(spec.get("external")),
        "mtu": 1500,
        "port_security_enabled": True,
        "description": "",
        "availability_zones": ["nova"],
        "availability_zone_hints": [],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "is_default": False,
        "l2_adjacency": True,
        **standard(net, projects),
    }


def subnet_view(net: Obj, projects: Projects) -> dict[str, Any]:
    spec = net["spec"]
    return {
        "id": netops.subnet_id(net),
        "name": spec.get("subnetName") or spec.get("displayName") or net["metadata"]["name"],
        "network_id": net["metadata"]["uid"],
        "ip_version": 4,
        "cidr": str(ipaddress.IPv4Network(spec["cidr"], strict=False)),
        "gateway_ip": str(ipam.gateway(spec)),
        "allocation_pools": [
            {"start": str(first), "end": str(last)} for first, last in ipam.Pool.of(spec).bounds()
        ],
        "dns_nameservers": list(spec.get("dnsServers", [])),
        "host_routes": [],
        "enable_dhcp": True,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "subnetpool_id": None,
        "segment_id": None,
        "service_types": [],
        "description": "",
        **standard(net, projects),
    }


def _visible(request: web.Request, net: Obj) -> bool:
    return sees(request, net, shared=bool(net["spec"].get("shared") or net["spec"].get("external")))


async def _network(request: web.Request, ident: str) -> Obj:
    try:
        net: Obj | None = await netops.by_uid(store_of(request), "Network", ident)
    except NotFound:
        net = None
    if net is None or not _visible(request, net):
        raise NeutronFault(404, "NetworkNotFound", f"Network {ident} could not be found.")
    return net


def _mine(request: web.Request, obj: Obj, what: str) -> None:
    if not sees(request, obj):
        raise NeutronFault(
            403, "PolicyNotAuthorized", f"Only the owner or an admin may change this {what}."
        )


def _settings(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for field, key in (("shared", "shared"), ("router:external", "external")):
        if field in body:
            if not isinstance(body[field], bool):
                raise NeutronFault(400, "HTTPBadRequest", f"Invalid input for {field}.")
            if body[field] and not is_admin(request):
                raise NeutronFault(403, "PolicyNotAuthorized", f"Only admins may set {field}.")
            spec[key] = body[field]
    return spec


async def list_networks(request: web.Request) -> web.Response:
    projects = await Projects.read(request)
    nets = (await store_of(request).list("Network")).items
    views = [
        network_view(n, projects)
        for n in nets
        if _visible(request, n) and not n["metadata"].get("deletionTimestamp")
    ]
    return listing(request, "networks", views)


async def show_network(request: web.Request) -> web.Response:
    net = await _network(request, request.match_info["id"])
    return one("network", network_view(net, await Projects.read(request)))


def _name(body: dict[str, Any], fallback: str) -> tuple[str, dict[str, Any]]:
    """The object name for a Neutron name, and the displayName to keep when it differs."""
    shown = body.get("name") or ""
    if not isinstance(shown, str) or len(shown) > 255:
        raise NeutronFault(400, "HTTPBadRequest", "Invalid input for name.")
    name = object_name_for(shown, fallback) if shown else f"{fallback}-{netops.short_id()}"
    return name, ({} if not shown or is_object_name(shown) else {"displayName": shown})


async def create_network(request: web.Request) -> web.Response:
    may_write(request)
    body = await body_of(request, "network")
    project = await acting_project(request, body)
    name, extra = _name(body, "net")
    net = await netops.create_network(
        store_of(request),
        project,
        name,
        {**extra, **_settings(request, body)},
        admin=is_admin(request),
    )
    return one("network", network_view(net, await Projects.read(request)), 201)


async def update_network(request: web.Request) -> web.Response:
    may_write(request)
    net = await _network(request, request.match_info["id"])
    _mine(request, net, "network")
    body = await body_of(request, "network")
    spec = {**net["spec"], **_settings(request, body)}
    if "name" in body:
        name, extra = _name(body, "net")
        if name != net["metadata"]["name"]:
            spec["displayName"] = body["name"]  # the object keeps its name; users see the new one
        else:
            spec.pop("displayName", None)
            spec.update(extra)
    updated = await netops.update_spec(store_of(request), net, spec, admin=is_admin(request))
    return one("network", network_view(updated, await Projects.read(request)))


async def delete_network(request: web.Request) -> web.Response:
    may_write(request)
    net = await _network(request, request.match_info["id"])
    _mine(request, net, "network")
    await netops.delete_network(store_of(request), net)
    return web.Response(status=204)


# --- subnets ---------------------------------------------------------------------------


async def list_subnets(request: web.Request) -> web.Response:
    projects = await Projects.read(request)
    nets = (await store_of(request).list("Network")).items
    views = [
        subnet_view(n, projects) for n in nets if n["spec"].get("cidr") and _visible(request, n)
    ]
    return listing(request, "subnets", views)


async def _subnet(request: web.Request, ident: str) -> Obj:
    try:
        net: Obj | None = await netops.by_subnet_id(store_of(request), ident)
    except NotFound:
        net = None
    if net is None or not _visible(request, net):
        raise NeutronFault(404, "SubnetNotFound", f"Subnet {ident} could not be found.")
    return net


async def show_subnet(request: web.Request) -> web.Response:
    net = await _subnet(request, request.match_info["id"])
    return one("subnet", subnet_view(net, await Projects.read(request)))


def _subnet_spec(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("ip_version", 4) != 4:
        raise NeutronFault(400, "InvalidInput", "Invalid input for operation: only IPv4 subnets.")
    if not isinstance(body.get("cidr"), str):
        raise NeutronFault(400, "HTTPBadRequest", "Invalid input for cidr.")
    spec: dict[str, Any] = {"cidr": body["cidr"]}
    if body.get("name"):
        spec["subnetName"] = str(body["name"])
    if body.get("gateway_ip"):
        spec["gateway"] = body["gateway_ip"]
    pools = body.get("allocation_pools") or []
    if not isinstance(pools, list) or not all(isinstance(p, dict) for p in pools):
        raise NeutronFault(400, "HTTPBadRequest", "Invalid input for allocation_pools.")
    if len(pools) > 1:
        raise NeutronFault(
            400, "InvalidInput", "Invalid input for operation: one allocation pool per subnet."
        )
    if pools:
        spec["dhcpRange"] = {"start": pools[0].get("start"), "end": pools[0].get("end")}
    if body.get("dns_nameservers"):
        if not isinstance(body["dns_nameservers"], list):
            raise NeutronFault(400, "HTTPBadRequest", "Invalid input for dns_nameservers.")
        spec["dnsServers"] = list(body["dns_nameservers"])
    if body.get("enable_dhcp") is False:
        raise NeutronFault(
            400, "InvalidInput", "Invalid input for operation: subnets always have DHCP."
        )
    return spec


async def create_subnet(request: web.Request) -> web.Response:
    may_write(request)
    body = await body_of(request, "subnet")
    net = await _network(request, str(body.get("network_id", "")))
    _mine(request, net, "network")
    updated = await netops.set_subnet(
        store_of(request), net, _subnet_spec(body), admin=is_admin(request)
    )
    return one("subnet", subnet_view(updated, await Projects.read(request)), 201)


async def update_subnet(request: web.Request) -> web.Response:
    may_write(request)
    net = await _subnet(request, request.match_info["id"])
    _mine(request, net, "subnet")
    body = await body_of(request, "subnet")
    spec = dict(net["spec"])
    if "name" in body:
        spec["subnetName"] = str(body["name"] or "")
        if not spec["subnetName"]:
            del spec["subnetName"]
    if "dns_nameservers" in body:
        spec["dnsServers"] = list(body["dns_nameservers"] or [])
        if not spec["dnsServers"]:
            del spec["dnsServers"]
    updated = await netops.update_spec(store_of(request), net, spec, admin=is_admin(request))
    return one("subnet", subnet_view(updated, await Projects.read(request)))


async def delete_subnet(request: web.Request) -> web.Response:
    may_write(request)
    net = await _subnet(request, request.match_info["id"])
    _mine(request, net, "subnet")
    await netops.drop_subnet(store_of(request), net)
    return web.Response(status=204)


# --- ports (read only) -----------------------------------------------------------------


def port_views(inst: Obj, nets: dict[str, Obj], projects: Projects) -> list[dict[str, Any]]:
    uid = inst["metadata"]["uid"]
    groups = inst["spec"].get("securityGroups") or [netops.DEFAULT_GROUP]
    views = []
    for index, port in enumerate((inst.get("status") or {}).get("ports") or []):
        net = nets.get(port["networkUid"])
        views.append(
            {
                "id": netops.port_id(uid, index),
                "name": "",
                "network_id": port["networkUid"],
                "mac_address": port["mac"],
                "fixed_ips": [
                    {
                        "subnet_id": netops.subnet_id(net) if net else None,
                        "ip_address": port["address"],
                    }
                ],
                "device_id": uid,
                "device_owner": "compute:nova",
                "status": "ACTIVE" if (inst.get("status") or {}).get("host") else "DOWN",
                "admin_state_up": True,
                "security_groups": groups,
                "binding:host_id": (inst.get("status") or {}).get("host", ""),
                "binding:vif_type": "bridge",
                "port_security_enabled": True,
                "allowed_address_pairs": [],
                "extra_dhcp_opts": [],
                "description": "",
                **standard(inst, projects),
            }
        )
    return views


async def _ports(request: web.Request) -> list[dict[str, Any]]:
    store = store_of(request)
    projects = await Projects.read(request)
    nets = {n["metadata"]["uid"]: n for n in (await store.list("Network")).items}
    project = None if is_admin(request) else caller(request).project
    instances = (await store.list("Instance", project)).items
    wanted = request.query.getall("device_id", [])
    return [
        view
        for inst in instances
        if not wanted or inst["metadata"]["uid"] in wanted
        for view in port_views(inst, nets, projects)
    ]


async def list_ports(request: web.Request) -> web.Response:
    return listing(request, "ports", await _ports(request))


async def show_port(request: web.Request) -> web.Response:
    for view in await _ports(request):
        if view["id"] == request.match_info["id"]:
            return one("port", view)
    raise NeutronFault(404, "PortNotFound", f"Port {request.match_info['id']} could not be found.")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2.0/networks", list_networks)
    r.add_post("/v2.0/networks", create_network)
    r.add_get("/v2.0/networks/{id}", show_network)
    r.add_put("/v2.0/networks/{id}", update_network)
    r.add_delete("/v2.0/networks/{id}", delete_network)
    r.add_get("/v2.0/subnets", list_subnets)
    r.add_post("/v2.0/subnets", create_subnet)
    r.add_get("/v2.0/subnets/{id}", show_subnet)
    r.add_put("/v2.0/subnets/{id}", update_subnet)
    r.add_delete("/v2.0/subnets/{id}", delete_subnet)
    r.add_get("/v2.0/ports", list_ports)
    r.add_get("/v2.0/ports/{id}", show_port)
