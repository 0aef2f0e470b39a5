"""Compute API availability zones: ``/os-availability-zone`` and ``/detail`` (admins).

Owns: the zones of the Host objects (``spec.zone``), available when a live
and enabled host is in them; the detail view lists each host's
``nova-compute`` service.

Must never: show hosts to non-admins.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import caller, store_of
from apiserver.compute.faults import ComputeFault
from state import keys


async def _zones(request: web.Request) -> dict[str, list[tuple[str, bool, bool]]]:
    store = store_of(request)
    zones: dict[str, list[tuple[str, bool, bool]]] = {}
    for host in (await store.list("Host")).items:
        name = host["metadata"]["name"]
        alive = await store.etcd.get(keys.alive(name)) is not None
        enabled = bool(host["spec"].get("enabled", True))
        zones.setdefault(host["spec"].get("zone", "nova"), []).append((name, alive, enabled))
    return zones


async def list_zones(request: web.Request) -> web.Response:
    info = [
        {
            "zoneName": zone,
            "zoneState": {"available": any(a and e for _, a, e in hosts)},
            "hosts": None,
        }
        for zone, hosts in sorted((await _zones(request)).items())
    ]
    return web.json_response({"availabilityZoneInfo": info})


async def detail(request: web.Request) -> web.Response:
    if "admin" not in caller(request).roles:
        raise ComputeFault(403, "Policy doesn't allow os_compute_api:os-availability-zone:detail")
    info: list[dict[str, Any]] = []
    for zone, hosts in sorted((await _zones(request)).items()):
        info.append(
            {
                "zoneName": zone,
                "zoneState": {"available": any(a and e for _, a, e in hosts)},
                "hosts": {
                    name: {
                        "nova-compute": {"available": alive, "active": enabled, "updated_at": None}
                    }
                    for name, alive, enabled in hosts
                },
            }
        )
    return web.json_response({"availabilityZoneInfo": info})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-availability-zone", list_zones)
    app.router.add_get("/v2.1/os-availability-zone/detail", detail)
