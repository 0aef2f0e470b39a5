"""Compute API server addresses: ``/servers/{id}/ips`` and ``/servers/{id}/ips/{network}``.

Owns: Nova's addresses of one server by network name (fixed addresses from
its ports, each followed by the floating IPs mapped to it; ``version`` and
``addr`` only, as Nova's ips resource shows them), and the 404 for a network
the server has no address on.

Must never: show another project's server's addresses (admins excepted).
"""

from __future__ import annotations

from aiohttp import web

from apiserver.compute.faults import ComputeFault
from apiserver.compute.server_lists import refs_for
from apiserver.compute.server_views import addresses
from apiserver.compute.servers import find


async def _addresses(request: web.Request, verb: str) -> dict[str, list[dict]]:
    inst = await find(request, request.match_info["server_id"], f"os_compute_api:ips:{verb}")
    refs = (await refs_for(request, [inst]))[inst["metadata"]["uid"]]
    return addresses(inst.get("status", {}), refs.floating, extended=False)


async def index(request: web.Request) -> web.Response:
    return web.json_response({"addresses": await _addresses(request, "index")})


async def show(request: web.Request) -> web.Response:
    network = request.match_info["network"]
    by_network = await _addresses(request, "show")
    if network not in by_network:
        raise ComputeFault(404, "Instance is not a member of specified network")
    return web.json_response({network: by_network[network]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/servers/{server_id}/ips", index)
    app.router.add_get("/v2.1/servers/{server_id}/ips/{network}", show)
