"""Compute API server tags (2.26): ``/servers/{id}/tags`` and ``/servers/{id}/tags/{tag}``.

Owns: a server's tags (``spec.tags`` of its Instance: at most 50, each a
non-empty string of at most 60 characters without "/" or ","), listing,
checking, adding, replacing and removing them, and Nova's 409 while the
server is not active, paused, suspended or stopped.

Must never: touch a server the caller may not see; answer below 2.26.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from apiserver.compute.context import json_body
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import require
from apiserver.compute.servers import find, write_spec
from apiserver.urls import base_url
from schemas.names import printable
from state.envelope import Obj

#: Nova's most tags one server has
MAX_TAGS = 50
_RULE = "os_compute_api:os-server-tags"
#: Nova's vm states in which tags may change
_CHANGEABLE = {"active", "paused", "suspended", "stopped"}


def valid_tag(tag: Any) -> bool:
    """Nova's rule for a tag (1 to 60 characters, no "/" or ","), and printable."""
    return (
        isinstance(tag, str)
        and 0 < len(tag) <= 60
        and "/" not in tag
        and "," not in tag
        and printable(tag)
    )


def _checked(tag: Any) -> str:
    if not valid_tag(tag):
        raise ComputeFault(
            400,
            f"Tag '{tag}' is invalid. It must be a non empty string of printable characters"
            " without characters '/' and ','.",
        )
    return str(tag)


async def _server(request: web.Request, verb: str, changing: str | None = None) -> Obj:
    require(request, "2.26")
    inst = await find(request, request.match_info["server_id"], f"{_RULE}:{verb}")
    vm_state = inst.get("status", {}).get("vmState", "building")
    if changing and vm_state not in _CHANGEABLE:
        raise ComputeFault(
            409,
            f"Cannot '{changing}' instance {inst['metadata']['uid']} while it is in "
            f"vm_state {vm_state}",
        )
    return inst


def _tags(inst: Obj) -> list[str]:
    return list(inst["spec"].get("tags") or [])


async def _write(request: web.Request, inst: Obj, tags: list[str]) -> None:
    if len(tags) > MAX_TAGS:
        raise ComputeFault(400, f"The number of tags exceeded the per-server limit {MAX_TAGS}")
    spec = dict(inst["spec"], tags=tags)
    if not tags:
        spec.pop("tags")
    await write_spec(request, inst, spec)


async def index(request: web.Request) -> web.Response:
    return web.json_response({"tags": _tags(await _server(request, "index"))})


async def show(request: web.Request) -> web.Response:
    inst = await _server(request, "show")
    tag = request.match_info["tag"]
    if tag not in _tags(inst):
        raise ComputeFault(404, f"Server {inst['metadata']['uid']} has no tag '{tag}'")
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    inst = await _server(request, "update", "update tag")
    tag = _checked(request.match_info["tag"])
    tags = _tags(inst)
    if tag in tags:
        return web.Response(status=204)
    await _write(request, inst, [*tags, tag])
    uid = inst["metadata"]["uid"]
    location = f"{base_url(request)}/compute/v2.1/servers/{uid}/tags/{quote(tag, safe='')}"
    return web.Response(status=201, headers={"Location": location})


async def update_all(request: web.Request) -> web.Response:
    inst = await _server(request, "update_all", "update tags")
    tags = (await json_body(request)).get("tags")
    if not isinstance(tags, list):
        raise ComputeFault(400, "Invalid input for field/attribute tags.")
    unique = list(dict.fromkeys(_checked(t) for t in tags))
    await _write(request, inst, unique)
    return web.json_response({"tags": unique})


async def delete(request: web.Request) -> web.Response:
    inst = await _server(request, "delete", "delete tag")
    tag = request.match_info["tag"]
    tags = _tags(inst)
    if tag not in tags:
        raise ComputeFault(404, f"Server {inst['metadata']['uid']} has no tag '{tag}'")
    await _write(request, inst, [t for t in tags if t != tag])
    return web.Response(status=204)


async def delete_all(request: web.Request) -> web.Response:
    inst = await _server(request, "delete_all", "delete tags")
    if _tags(inst):
        await _write(request, inst, [])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/servers/{server_id}/tags", index)
    app.router.add_put("/v2.1/servers/{server_id}/tags", update_all)
    app.router.add_delete("/v2.1/servers/{server_id}/tags", delete_all)
    app.router.add_get("/v2.1/servers/{server_id}/tags/{tag}", show)
    app.router.add_put("/v2.1/servers/{server_id}/tags/{tag}", update)
    app.router.add_delete("/v2.1/servers/{server_id}/tags/{tag}", delete)
