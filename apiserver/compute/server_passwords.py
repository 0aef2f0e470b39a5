"""Compute API ``/servers/{id}/os-server-password``: the password a guest set.

Owns: showing the (encrypted) password the guest posted to the metadata
service (``""`` when none) and clearing it, so that the guest may set a new
one.

Must never: show or clear another project's server's password (admins
excepted).
"""

from __future__ import annotations

from aiohttp import web

from apiserver.compute.context import store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.servers import find
from apiserver.metadata.service import PASSWORD_ANNOTATION
from state.errors import Conflict


async def show(request: web.Request) -> web.Response:
    rule = "os_compute_api:os-server-password:show"
    inst = await find(request, request.match_info["server_id"], rule)
    annotations = inst["metadata"].get("annotations") or {}
    return web.json_response({"password": annotations.get(PASSWORD_ANNOTATION, "")})


async def clear(request: web.Request) -> web.Response:
    rule = "os_compute_api:os-server-password:clear"
    inst = await find(request, request.match_info["server_id"], rule)
    annotations = dict(inst["metadata"].get("annotations") or {})
    if annotations.pop(PASSWORD_ANNOTATION, None) is not None:
        try:
            await store_of(request).update(
                dict(inst, metadata=dict(inst["metadata"], annotations=annotations))
            )
        except Conflict:
            raise ComputeFault(409, "The server changed meanwhile; try again") from None
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/servers/{server_id}/os-server-password", show)
    app.router.add_delete("/v2.1/servers/{server_id}/os-server-password", clear)
