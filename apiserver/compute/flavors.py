"""Compute API flavors: ``/flavors``, ``/flavors/detail``, ``/flavors/{id}``, extra specs.

Owns: the Nova views of Flavor objects at each microversion (at 2.1:
``id``, ``name``, ``ram``, ``vcpus``, ``disk``, ``swap``, ``rxtx_factor``,
``OS-FLV-EXT-DATA:ephemeral``, ``OS-FLV-DISABLED:disabled``,
``os-flavor-access:is_public`` and links; the same up to 2.47), the
``is_public`` filter of admins, the ``minRam`` and ``minDisk`` filters,
``sort_key``/``sort_dir`` (by RAM, then name, when not asked) and paging
with ``limit``/``marker`` (a flavor id) and ``flavors_links``. A flavor's id is the one an admin gave it
at its create, else its uid; a lookup by name is answered too. A private
flavor is seen and used by admins and the projects in ``spec.projects``.

Must never: show a private flavor to a non-admin of a project without access.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import allowed, authorize, caller, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.paging import page
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


#: Nova's flavor ``sort_key`` values -> the value of a flavor they sort by
_SORT_KEYS: dict[str, Any] = {
    "flavorid": flavor_id,
    "id": flavor_id,
    "name": flavor_name,
    "memory_mb": lambda f: f["spec"]["ramMiB"],
    "vcpus": lambda f: f["spec"]["vcpus"],
    "root_gb": lambda f: f["spec"]["diskGiB"],
    "ephemeral_gb": lambda f: f["spec"].get("ephemeralGiB", 0),
    "swap": lambda f: f["spec"].get("swapMiB", 0),
    "rxtx_factor": lambda f: float(f["spec"].get("rxtxFactor", 1.0)),
    "is_public": lambda f: bool(f["spec"].get("isPublic", True)),
    "disabled": lambda f: False,
    "vcpu_weight": lambda f: 0,
    "description": lambda f: "",
    "created_at": lambda f: f["metadata"].get("creationTimestamp", ""),
    "updated_at": lambda f: f["metadata"].get("creationTimestamp", ""),
}


def _minimum(request: web.Request, param: str) -> int:
    raw = request.query.get(param)
    if raw is None:
        return 0
    if not raw.isdigit():
        raise ComputeFault(400, f"Invalid {param} filter [{raw}]")
    return int(raw)


def _sorted(request: web.Request, flavors: list[Obj]) -> list[Obj]:
    key = request.query.get("sort_key")
    direction = request.query.get("sort_dir", "asc")
    if direction not in ("asc", "desc"):
        raise ComputeFault(
            400,
            f"Invalid input for query parameters sort_dir. Value: {direction}. "
            f"'{direction}' is not one of ['asc', 'desc']",
        )
    if key is None:
        return flavors if direction == "asc" else flavors[::-1]
    if key not in _SORT_KEYS:
        raise ComputeFault(
            400,
            f"Invalid input for query parameters sort_key. Value: {key}. "
            f"'{key}' is not one of {sorted(_SORT_KEYS)}",
        )
    by = _SORT_KEYS[key]
    return sorted(flavors, key=lambda f: (by(f), flavor_id(f)), reverse=direction == "desc")


async def _listed(request: web.Request, path: str) -> tuple[list[Obj], list[dict[str, str]]]:
    """The page of visible flavors the query asks, and its "next" link."""
    min_ram = _minimum(request, "minRam")
    min_disk = _minimum(request, "minDisk")
    flavors = [
        f
        for f in await _visible(request)
        if f["spec"]["ramMiB"] >= min_ram and f["spec"]["diskGiB"] >= min_disk
    ]
    return page(request, _sorted(request, flavors), flavor_id, path)


async def list_flavors(request: web.Request) -> web.Response:
    flavors, more = await _listed(request, "flavors")
    body: dict[str, Any] = {"flavors": [brief(request, f) for f in flavors]}
    if more:
        body["flavors_links"] = more
    return web.json_response(body)


async def list_detail(request: web.Request) -> web.Response:
    flavors, more = await _listed(request, "flavors/detail")
    body: dict[str, Any] = {"flavors": [full(request, f) for f in flavors]}
    if more:
        body["flavors_links"] = more
    return web.json_response(body)


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
