"""Compute API ``/servers/{id}/diagnostics`` (admins), as Nova answered before 2.48.

Owns: the free-form diagnostics of a server placed on a host. Before 2.48
each virt driver answered its own keys; libvirt's ``memory`` (the guest's
memory in KiB) is the one desired knows without asking the host, so that is
what is shown (2.48's common shape is above the highest microversion served).

Must never: answer a non-admin, or invent counters nobody measured.
"""

from __future__ import annotations

from aiohttp import web

from apiserver.compute.context import store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.servers import find
from state.envelope import Ref


async def show(request: web.Request) -> web.Response:
    rule = "os_compute_api:os-server-diagnostics"
    inst = await find(request, request.match_info["server_id"], rule)
    uid, status = inst["metadata"]["uid"], inst.get("status", {})
    if not status.get("host"):
        raise ComputeFault(409, f"Instance {uid} is not ready")
    flavor = await store_of(request).get_or_none(Ref("Flavor", None, inst["spec"]["flavor"]))
    ram_mib = int(flavor["spec"]["ramMiB"]) if flavor is not None else 0
    return web.json_response({"memory": ram_mib * 1024})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/servers/{server_id}/diagnostics", show)
