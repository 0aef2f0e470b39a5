"""Neutron's floating IPs, over desired's FloatingIPs.

A floating IP's network is its pool (an external Network); its port is an
instance's port (``netops.port_id``); associating it sets the FloatingIP's
``instance`` (and ``fixedAddress``).

Owns: the handlers and views of ``/v2.0/floatingips``.

Must never: associate a floating IP with another project's instance, or one
that is associated already with another.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver import netops
from apiserver.network import quotas
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
    standard,
    store_of,
)
from state import ipam
from state.envelope import Obj, Ref
from state.errors import NotFound


def fip_view(
    fip: Obj, pool_uid: str, port: str | None, fixed: str | None, projects: Projects
) -> dict[str, Any]:
    """``port``, ``fixed``: the port it maps to and that port's address (None: none)."""
    return {
        "id": fip["metadata"]["uid"],
        "floating_ip_address": ipam.floating_address(fip),
        "floating_network_id": pool_uid,
        "router_id": None,
        "port_id": port,
        "fixed_ip_address": fixed,
        "status": "ACTIVE" if port else "DOWN",
        "description": "",
        "port_details": None,
        "dns_domain": "",
        "dns_name": "",
        "qos_policy_id": None,
        **standard(fip, projects),
    }


async def _views(request: web.Request, fips: list[Obj]) -> list[dict[str, Any]]:
    store = store_of(request)
    projects = await Projects.read(request)
    pools = {
        n["metadata"]["name"]: n["metadata"]["uid"]
        for n in (await store.list("Network")).items
        if n["spec"].get("external")
    }
    views = []
    for fip in fips:
        port, fixed = None, None
        found = await netops.target(store, fip)
        if found is not None:
            inst, index = found
            port = netops.port_id(inst["metadata"]["uid"], index)
            fixed = inst["status"]["ports"][index]["address"]
        views.append(fip_view(fip, pools.get(fip["spec"]["pool"], ""), port, fixed, projects))
    return views


async def _fips(request: web.Request) -> list[Obj]:
    project = None if is_admin(request) else caller(request).project
    return [
        f
        for f in (await store_of(request).list("FloatingIP", project)).items
        if not f["metadata"].get("deletionTimestamp")
    ]


async def _fip(request: web.Request, ident: str) -> Obj:
    for f in await _fips(request):
        if f["metadata"]["uid"] == ident:
            return f
    raise NeutronFault(404, "FloatingIPNotFound", f"Floating IP {ident} could not be found")


async def _port(request: web.Request, project: str, port_id: str) -> tuple[Obj, str]:
    """The instance of ``project`` and the fixed address a port id stands for."""
    for inst in (await store_of(request).list("Instance", project)).items:
        for index, p in enumerate((inst.get("status") or {}).get("ports") or []):
            if netops.port_id(inst["metadata"]["uid"], index) == port_id:
                return inst, p["address"]
    raise NeutronFault(404, "PortNotFound", f"Port {port_id} could not be found.")


async def list_fips(request: web.Request) -> web.Response:
    return listing(request, "floatingips", await _views(request, await _fips(request)))


async def show_fip(request: web.Request) -> web.Response:
    fip = await _fip(request, request.match_info["id"])
    return one("floatingip", (await _views(request, [fip]))[0])


async def create_fip(request: web.Request) -> web.Response:
    may_write(request)
    body = await body_of(request, "floatingip")
    project = await acting_project(request, body)
    await quotas.check(request, project, "floatingip")
    store = store_of(request)
    try:
        pool = await netops.by_uid(store, "Network", str(body.get("floating_network_id", "")))
    except NotFound:
        raise NeutronFault(
            404, "NetworkNotFound", f"Network {body.get('floating_network_id')} could not be found."
        ) from None
    if not pool["spec"].get("external"):
        raise NeutronFault(
            400,
            "BadRequest",
            f"Bad floatingip request: Network {pool['metadata']['uid']} is not a valid external network.",
        )
    try:
        fip = await netops.create_floating_ip(store, project, pool, body.get("floating_ip_address"))
    except ipam.PoolExhausted:
        raise NeutronFault(
            409,
            "IpAddressGenerationFailure",
            f"No more IP addresses available on network {pool['metadata']['uid']}.",
        ) from None
    if body.get("port_id"):
        inst, fixed = await _port(request, project, body["port_id"])
        fip = await netops.associate(store, fip, inst, body.get("fixed_ip_address") or fixed)
    return one("floatingip", (await _views(request, [fip]))[0], 201)


async def update_fip(request: web.Request) -> web.Response:
    may_write(request)
    fip = await _fip(request, request.match_info["id"])
    body = await body_of(request, "floatingip")
    store = store_of(request)
    if "port_id" in body:
        if body["port_id"]:
            inst, fixed = await _port(request, fip["metadata"]["project"], body["port_id"])
            fip = await netops.associate(store, fip, inst, body.get("fixed_ip_address") or fixed)
        else:
            fip = await netops.associate(store, fip, None)
    return one("floatingip", (await _views(request, [fip]))[0])


async def delete_fip(request: web.Request) -> web.Response:
    may_write(request)
    fip = await _fip(request, request.match_info["id"])
    await store_of(request).delete(
        Ref("FloatingIP", fip["metadata"]["project"], fip["metadata"]["name"])
    )
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2.0/floatingips", list_fips)
    r.add_post("/v2.0/floatingips", create_fip)
    r.add_get("/v2.0/floatingips/{id}", show_fip)
    r.add_put("/v2.0/floatingips/{id}", update_fip)
    r.add_delete("/v2.0/floatingips/{id}", delete_fip)
