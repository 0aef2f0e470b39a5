"""Compute API availability zones: ``/os-availability-zone`` and ``/detail`` (admins).

Owns: the zones of the compute hosts as the conductor's SQL has them (a
Host's ``spec.zone``, or the zone of an aggregate it is in), available when
a live and enabled host is in them; the detail view lists each host's
``nova-compute`` service.

Must never: show hosts to non-admins.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, authorize, store_of
from apiserver.compute.times import nova_time
from state.sql.hosts import HostRow


async def _zones(request: web.Request) -> dict[str, list[HostRow]]:
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    zones: dict[str, list[HostRow]] = {}
    for host in await views.hosts():
        zones.setdefault(host.node.zone, []).append(host)
    return zones


async def known_zones(request: web.Request) -> set[str]:
    """The zones that have a compute host, available or not."""
    return set(await _zones(request))


async def list_zones(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:os-availability-zone:list")
    info = [
        {
            "zoneName": zone,
            "zoneState": {"available": any(h.up and h.enabled for h in hosts)},
            "hosts": None,
        }
        for zone, hosts in sorted((await _zones(request)).items())
    ]
    return web.json_response({"availabilityZoneInfo": info})


async def detail(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:os-availability-zone:detail")
    info: list[dict[str, Any]] = []
    for zone, hosts in sorted((await _zones(request)).items()):
        info.append(
            {
                "zoneName": zone,
                "zoneState": {"available": any(h.up and h.enabled for h in hosts)},
                "hosts": {
                    h.node.host: {
                        "nova-compute": {
                            "available": h.up,
                            "active": h.enabled,
                            "updated_at": nova_time(h.updated_at),
                        }
                    }
                    for h in hosts
                },
            }
        )
    return web.json_response({"availabilityZoneInfo": info})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-availability-zone", list_zones)
    app.router.add_get("/v2.1/os-availability-zone/detail", detail)
