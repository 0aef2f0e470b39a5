"""Compute API os-hosts (admins, until 2.43): the compute hosts, their resources, enabling.

Owns: Nova's host list (each Host's ``nova-compute`` in its zone; ``zone``
filters), a host's resources (its ``(total)``, ``(used_now)`` and
``(used_max)`` rows from the conductor's SQL; the per-project rows Nova adds
are not shown), ``PUT`` with ``status`` (enables or disables the Host, as
os-services does) and Nova's 501 for what a libvirt host does not do
(maintenance mode, startup, shutdown, reboot). From 2.43 every route is 404,
as Nova removed them.

Must never: answer a non-admin.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, authorize, json_body, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.services import change_host
from state.sql.hosts import HostRow


async def _hosts(request: web.Request, verb: str, name: str | None = None) -> list[HostRow]:
    if since(request, "2.43"):
        raise ComputeFault(404, "The resource could not be found.")
    authorize(request, f"os_compute_api:os-hosts:{verb}")
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    rows = await views.hosts(name)
    if name is not None and not rows:
        raise ComputeFault(404, f"Compute host {name} could not be found.")
    return rows


async def index(request: web.Request) -> web.Response:
    zone = request.query.get("zone")
    hosts = [
        {"host_name": h.node.host, "service": "compute", "zone": h.node.zone}
        for h in await _hosts(request, "list")
        if not zone or h.node.zone == zone  # (a blank zone filters nothing, as Nova)
    ]
    return web.json_response({"hosts": hosts})


def _resource(h: HostRow, project: str, cpu: int, ram: int, disk: int) -> dict[str, Any]:
    return {
        "resource": {
            "host": h.node.host,
            "project": project,
            "cpu": cpu,
            "memory_mb": ram,
            "disk_gb": disk,
        }
    }


async def show(request: web.Request) -> web.Response:
    (h,) = await _hosts(request, "show", request.match_info["host_name"])
    n = h.node
    used = (n.vcpus_used, n.ram_mib_used, n.disk_gib_used)
    rows = [
        _resource(h, "(total)", n.vcpus, n.ram_mib, n.disk_gib),
        _resource(h, "(used_now)", *used),
        _resource(h, "(used_max)", *used),
    ]
    return web.json_response({"host": rows})


def _switch(body: dict[str, Any], field: str) -> bool | None:
    value = body.get(field)
    return None if value is None else str(value).lower() == "enable"


async def update(request: web.Request) -> web.Response:
    name = request.match_info["host_name"]
    await _hosts(request, "update", name)
    body = await json_body(request)
    if _switch(body, "maintenance_mode") is not None:
        raise ComputeFault(501, "Virt driver does not implement host maintenance mode.")
    enabled = _switch(body, "status")
    change: dict[str, Any] = {"enabled": enabled}
    if enabled:
        change["disabledReason"] = None
    await change_host(request, name, change)
    return web.json_response({"host": name, "status": "enabled" if enabled else "disabled"})


def _power(verb: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        await _hosts(request, verb, request.match_info["host_name"])
        raise ComputeFault(501, "Virt driver does not implement host power management.")

    return handler


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-hosts", index)
    app.router.add_get("/v2.1/os-hosts/{host_name}", show)
    app.router.add_put("/v2.1/os-hosts/{host_name}", update)
    for action, verb in (("startup", "start"), ("shutdown", "shutdown"), ("reboot", "reboot")):
        app.router.add_get(f"/v2.1/os-hosts/{{host_name}}/{action}", _power(verb))
