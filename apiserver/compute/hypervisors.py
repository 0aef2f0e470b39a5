"""Compute API os-hypervisors (admins): list, detail, show, statistics, search, servers.

Uptime is answered 501, as Nova does for a virt driver without it.

Owns: Nova's hypervisor views up to 2.47 (2.28's ``cpu_info`` object, 2.33's
paging by id) of the compute hosts the conductor keeps
in SQL (capacity and usage, libvirt's type and version, CPU, address,
liveness) with the enabled flag and reason of their Host objects. A
hypervisor's id is its Host object's row id, the same as its service's.

Must never: answer a non-admin.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, authorize, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.paging import page
from state.sql.hosts import HostRow


def brief(h: HostRow) -> dict[str, Any]:
    return {
        "hypervisor_hostname": h.node.host,
        "id": h.id,
        "state": "up" if h.up else "down",
        "status": "enabled" if h.enabled else "disabled",
    }


def _reserved(h: HostRow) -> dict[str, int]:
    reserved = h.spec.get("reserved") or {}
    return {
        "vcpus": int(reserved.get("vcpus", 0)),
        "ram": int(reserved.get("ramMiB", 512)),
        "disk": int(reserved.get("diskGiB", 0)),
    }


def detail(request: web.Request, h: HostRow) -> dict[str, Any]:
    n, reserved = h.node, _reserved(h)
    ram_used = n.ram_mib_used + reserved["ram"]
    disk_used = n.disk_gib_used + reserved["disk"]
    return {
        **brief(h),
        "cpu_info": _cpu_info(n.cpu_info) if since(request, "2.28") else n.cpu_info,
        "current_workload": h.busy,
        "disk_available_least": n.disk_gib - disk_used,
        "free_disk_gb": n.disk_gib - disk_used,
        "free_ram_mb": n.ram_mib - ram_used,
        "host_ip": n.host_ip,
        "hypervisor_type": n.hypervisor_type,
        "hypervisor_version": n.hypervisor_version,
        "local_gb": n.disk_gib,
        "local_gb_used": disk_used,
        "memory_mb": n.ram_mib,
        "memory_mb_used": ram_used,
        "running_vms": n.running_vms,
        "service": {
            "host": n.host,
            "id": h.id,
            "disabled_reason": None if h.enabled else h.spec.get("disabledReason"),
        },
        "vcpus": n.vcpus,
        "vcpus_used": n.vcpus_used + reserved["vcpus"],
    }


def _cpu_info(text: str | None) -> dict[str, Any]:
    """2.28's cpu_info: an object ({} when the host gave none)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _hosts(request: web.Request, verb: str) -> list[HostRow]:
    authorize(request, f"os_compute_api:os-hypervisors:{verb}")
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    return await views.hosts()


async def _listed(request: web.Request, verb: str, path: str) -> tuple[list[HostRow], dict]:
    """The hosts of one list; from 2.33 a page of them by id, with its link."""
    hosts = await _hosts(request, verb)
    if not since(request, "2.33"):
        return hosts, {}
    hosts.sort(key=lambda h: h.id)
    hosts, more = page(request, hosts, lambda h: str(h.id), path, "marker [{marker}] not found")
    return hosts, {"hypervisors_links": more} if more else {}


async def index(request: web.Request) -> web.Response:
    hosts, more = await _listed(request, "list", "os-hypervisors")
    return web.json_response({"hypervisors": [brief(h) for h in hosts], **more})


async def index_detail(request: web.Request) -> web.Response:
    hosts, more = await _listed(request, "list-detail", "os-hypervisors/detail")
    return web.json_response({"hypervisors": [detail(request, h) for h in hosts], **more})


async def _one(request: web.Request, verb: str) -> HostRow:
    ident = request.match_info["hypervisor_id"]
    for h in await _hosts(request, verb):
        if str(h.id) == ident:
            return h
    raise ComputeFault(404, f"Hypervisor with ID '{ident}' could not be found.")


async def show(request: web.Request) -> web.Response:
    return web.json_response({"hypervisor": detail(request, await _one(request, "show"))})


async def statistics(request: web.Request) -> web.Response:
    rows = [detail(request, h) for h in await _hosts(request, "statistics")]
    summed = (
        "current_workload",
        "disk_available_least",
        "free_disk_gb",
        "free_ram_mb",
        "local_gb",
        "local_gb_used",
        "memory_mb",
        "memory_mb_used",
        "running_vms",
        "vcpus",
        "vcpus_used",
    )
    stats = {"count": len(rows), **{k: sum(r[k] for r in rows) for k in summed}}
    return web.json_response({"hypervisor_statistics": stats})


async def uptime(request: web.Request) -> web.Response:
    """Nova's answer for a virt driver that cannot tell a host's uptime (clients show the
    hypervisor without it)."""
    await _one(request, "uptime")  # 403 and 404 first
    raise ComputeFault(501, "Virt driver does not implement uptime function.")


async def _matching(request: web.Request, verb: str) -> list[HostRow]:
    pattern = request.match_info["pattern"]
    found = [h for h in await _hosts(request, verb) if pattern in h.node.host]
    if not found:
        raise ComputeFault(404, f"No hypervisor matching '{pattern}' could be found.")
    return found


async def search(request: web.Request) -> web.Response:
    return web.json_response(
        {"hypervisors": [brief(h) for h in await _matching(request, "search")]}
    )


async def servers(request: web.Request) -> web.Response:
    out = []
    for h in await _matching(request, "servers"):
        hypervisor = brief(h)
        on = await request.app[VIEWS].servers_on(h.node.host)
        if on:
            hypervisor["servers"] = [{"name": name, "uuid": uid} for uid, name in on]
        out.append(hypervisor)
    return web.json_response({"hypervisors": out})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-hypervisors", index)
    app.router.add_get("/v2.1/os-hypervisors/detail", index_detail)
    app.router.add_get("/v2.1/os-hypervisors/statistics", statistics)
    app.router.add_get("/v2.1/os-hypervisors/{pattern}/search", search)
    app.router.add_get("/v2.1/os-hypervisors/{pattern}/servers", servers)
    app.router.add_get("/v2.1/os-hypervisors/{hypervisor_id}", show)
    app.router.add_get("/v2.1/os-hypervisors/{hypervisor_id}/uptime", uptime)
