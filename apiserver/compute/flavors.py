"""Compute API flavors: ``/flavors``, ``/flavors/detail``, ``/flavors/{id}``, extra specs.

Owns: the Nova views of Flavor objects at each microversion (at 2.1:
``id``, ``name``, ``ram``, ``vcpus``, ``disk``, ``swap``, ``rxtx_factor``,
``OS-FLV-EXT-DATA:ephemeral``, ``OS-FLV-DISABLED:disabled``,
``os-flavor-access:is_public`` and links; the same up to 2.47) and the
``is_public`` filter of admins. A flavor's id is the one an admin gave it
at its create, else its uid; a lookup by name is answered too. A private
flavor is seen and used by admins and the projects in ``spec.projects``.

Must never: show a private flavor to a non-admin of a project without access.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import allowed, authorize, caller, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.urls import base_url
from state.envelope import Obj


def _links(request: web.Request, fid: str) -> list[dict[str, str]]:
    base = base_url(request)
    return [
        {"href": f"{base}/compute/v2.1/flavors/{fid}", "rel": "self"},
        {"href": f"{base}/compute/flavors/{fid}", "rel": "bookmark"},
    ]


#: the id an admin gave a flavor at its create (its uid when none)
ID_ANNOTATION = "desired/flavor-id"


def flavor_id(flavor: Obj) -> str:
    return str(
        (flavor["metadata"].get("annotations") or {}).get(ID_ANNOTATION)
        or flavor["metadata"]["uid"]
    )


def flavor_name(flavor: Obj) -> str:
    return str(flavor["spec"].get("displayName") or flavor["metadata"]["name"])


def brief(request: web.Request, flavor: Obj) -> dict[str, Any]:
    fid = flavor_id(flavor)
    return {"id": fid, "name": flavor_name(flavor), "links": _links(request, fid)}


def full(request: web.Request, flavor: Obj) -> dict[str, Any]:
    spec = flavor["spec"]
    view = brief(request, flavor)
    view.update(
        {
            "ram": spec["ramMiB"],
            "vcpus": spec["vcpus"],
            "disk": spec["diskGiB"],
            "swap": spec.get("swapMiB") or "",
            "rxtx_factor": float(spec.get("rxtxFactor", 1.0)),
            "OS-FLV-EXT-DATA:ephemeral": spec.get("ephemeralGiB", 0),
            "OS-FLV-DISABLED:disabled": False,
            "os-flavor-access:is_public": spec.get("isPublic", True),
        }
    )
    return view


def _usable(request: web.Request, flavor: Obj, admin: bool) -> bool:
    """Whether the caller may see and use the flavor: a public one, or a private one its
    project was given access to (``admin``: all)."""
    if admin or flavor["spec"].get("isPublic", True):
        return True
    return caller(request).project in (flavor["spec"].get("projects") or [])


async def _visible(request: web.Request) -> list[Obj]:
    """The flavors the caller may use; admins filter by ``is_public`` (none: all)."""
    admin = allowed(request, "os_compute_api:os-flavor-access")  # sees private flavors
    flavors = (await store_of(request).list("Flavor")).items
    wanted = request.query.get("is_public", "none").lower() if admin else "any"
    out = []
    for f in flavors:
        public = f["spec"].get("isPublic", True)
        if not _usable(request, f, admin):
            continue
        if wanted in ("true", "1", "yes") and not public:
            continue
        if wanted in ("false", "0", "no") and public:
            continue
        out.append(f)
    return sorted(out, key=lambda f: (f["spec"]["ramMiB"], f["metadata"]["name"]))


async def list_flavors(request: web.Request) -> web.Response:
    return web.json_response({"flavors": [brief(request, f) for f in await _visible(request)]})


async def list_detail(request: web.Request) -> web.Response:
    return web.json_response({"flavors": [full(request, f) for f in await _visible(request)]})


async def find(request: web.Request, ident: str) -> Obj:
    for f in await _visible(request):
        if ident in (f["metadata"]["uid"], f["metadata"]["name"], flavor_id(f), flavor_name(f)):
            return f
    raise ComputeFault(404, f"Flavor {ident} could not be found.")


async def show(request: web.Request) -> web.Response:
    flavor = await find(request, request.match_info["flavor_id"])
    return web.json_response({"flavor": full(request, flavor)})


async def extra_specs(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:os-flavor-extra-specs:index")
    flavor = await find(request, request.match_info["flavor_id"])
    return web.json_response({"extra_specs": dict(flavor["spec"].get("extraSpecs") or {})})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/flavors", list_flavors)
    app.router.add_get("/v2.1/flavors/detail", list_detail)
    app.router.add_get("/v2.1/flavors/{flavor_id}", show)
    app.router.add_get("/v2.1/flavors/{flavor_id}/os-extra_specs", extra_specs)
