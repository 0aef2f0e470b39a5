"""Compute API flavor management (admins): flavors, their extra specs and access to them.

Owns: os-flavor-manage (``POST /flavors``, ``DELETE /flavors/{id}``) over
Flavor objects (a name that is no object name is kept as
``spec.displayName`` of an object named after it with a digest; a given id
is kept as the annotation ``desired/flavor-id``), the writes of
os-flavor-extra-specs (merge, one key, delete one key) and reading one key,
and os-flavor-access (the projects in ``spec.projects`` of a private
flavor; ``addTenantAccess``, ``removeTenantAccess``; from 2.7 adding access
to a public flavor is a 409).

Must never: let a non-admin change a flavor; make two flavors of one name or id;
delete a flavor a live server names.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, authorize, json_body, project_ids, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.flavors import ID_ANNOTATION, find, flavor_id, flavor_name, full
from apiserver.compute.microversions import since
from apiserver.compute.names import object_name_for
from apiserver.identity import keystone_id
from state.envelope import Obj, Ref
from state.errors import AlreadyExists, Conflict, NotFound
from state.sql.server_lists import ServerQuery
from state.validation import validate

_MANAGE = "os_compute_api:os-flavor-manage"
_SPECS = "os_compute_api:os-flavor-extra-specs"
_ACCESS = "os_compute_api:os-flavor-access"
#: Nova's flavor names and ids
_NAME = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")
#: tries of a change whose Flavor object changed meanwhile
_RETRIES = 5


def _number(body: dict[str, Any], field: str, low: int, default: int | None = None) -> int:
    value = body.get(field, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 2**31 - 1:
        raise ComputeFault(400, f"Invalid input for field/attribute {field}.")
    return value


#: the strings Nova's boolean fields take, by the value they stand for
_BOOLEANS = {
    **dict.fromkeys(("true", "1", "on", "yes"), True),
    **dict.fromkeys(("false", "0", "off", "no"), False),
}


def _boolean(value: Any, field: str) -> bool:
    """A boolean field as Nova takes it: true or false, or one of their strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    raise ComputeFault(400, f"Invalid input for field/attribute {field}.")


async def create(request: web.Request) -> web.Response:
    authorize(request, f"{_MANAGE}:create")
    body = await json_body(request, "flavor")
    name = body.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 255 or not _NAME.match(name):
        raise ComputeFault(400, "Invalid input for field/attribute name.")
    given = body.get("id")
    if isinstance(given, int | float) and not isinstance(given, bool):
        given = str(given)  # Nova takes a number and answers with its string
    if given is not None and given != "auto":
        if not isinstance(given, str) or not 0 < len(given) <= 255 or not _NAME.match(given):
            raise ComputeFault(400, "Invalid input for field/attribute id.")
    spec: dict[str, Any] = {
        "vcpus": _number(body, "vcpus", 1),
        "ramMiB": _number(body, "ram", 1),
        "diskGiB": _number(body, "disk", 0),
        "ephemeralGiB": _number(body, "OS-FLV-EXT-DATA:ephemeral", 0, 0),
        "swapMiB": _number(body, "swap", 0, 0) if body.get("swap") != "" else 0,
        "isPublic": body.get("os-flavor-access:is_public", True),
    }
    factor = body.get("rxtx_factor", 1.0)
    if not isinstance(factor, int | float) or isinstance(factor, bool) or factor <= 0:
        raise ComputeFault(400, "Invalid input for field/attribute rxtx_factor.")
    spec["rxtxFactor"] = float(factor)
    spec["isPublic"] = _boolean(spec["isPublic"], "os-flavor-access:is_public")
    if object_name_for(name, "flavor") != name:
        spec["displayName"] = name
    store = store_of(request)
    for other in (await store.list("Flavor")).items:
        if flavor_name(other) == name:
            raise ComputeFault(409, f"Flavor with name {name} already exists.")
        if given not in (None, "auto") and flavor_id(other) == given:
            raise ComputeFault(409, f"Flavor with ID {given} already exists.")
    metadata: dict[str, Any] = {"name": object_name_for(name, "flavor")}
    if given not in (None, "auto"):
        metadata["annotations"] = {ID_ANNOTATION: given}
    try:
        made = await store.create(validate({"kind": "Flavor", "metadata": metadata, "spec": spec}))
    except AlreadyExists:
        raise ComputeFault(409, f"Flavor with name {name} already exists.") from None
    return web.json_response({"flavor": full(request, made)})


async def delete(request: web.Request) -> web.Response:
    """Deletes a flavor no live server uses (Nova lets that be; here servers keep naming
    their flavor, so it stays while they do: 409)."""
    authorize(request, f"{_MANAGE}:delete")
    flavor = await find(request, request.match_info["flavor_id"])
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    name = flavor["metadata"]["name"]
    if await views.servers(ServerQuery(project=None, equal={"flavor": name}, limit=1)):
        raise ComputeFault(409, f"Flavor {flavor_id(flavor)} is used by servers; delete them first")
    try:
        await store_of(request).delete(Ref("Flavor", None, flavor["metadata"]["name"]))
    except NotFound:
        pass
    return web.Response(status=202)


async def _change(request: web.Request, change: Any) -> Obj:
    """Applies ``change`` (which edits a spec in place) to the flavor of the path."""
    store = store_of(request)
    for _ in range(_RETRIES):
        flavor = await find(request, request.match_info["flavor_id"])
        spec = dict(flavor["spec"])
        change(spec)
        try:
            written = await store.update(validate(dict(flavor, spec=spec)))
        except Conflict:
            continue
        assert written is not None
        return written
    raise ComputeFault(409, "The flavor kept changing; retry")


def _specs(body: Any) -> dict[str, str]:
    """The extra specs of a request body (``{"extra_specs": {...}}``)."""
    specs = body.get("extra_specs") if isinstance(body, dict) else None
    if not isinstance(specs, dict) or not specs:
        raise ComputeFault(400, "Invalid input for field/attribute extra_specs.")
    out = {}
    for key, value in specs.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not 0 < len(key) <= 255 or len(value) > 255:
            raise ComputeFault(400, f"Invalid input for field/attribute extra_specs. Key: {key}.")
        out[key] = value
    return out


async def set_specs(request: web.Request) -> web.Response:
    authorize(request, f"{_SPECS}:create")
    specs = _specs(await json_body(request))
    flavor = await _change(
        request, lambda spec: spec.update(extraSpecs={**(spec.get("extraSpecs") or {}), **specs})
    )
    return web.json_response({"extra_specs": dict(flavor["spec"].get("extraSpecs") or {})})


async def show_spec(request: web.Request) -> web.Response:
    authorize(request, f"{_SPECS}:show")
    flavor = await find(request, request.match_info["flavor_id"])
    key = request.match_info["key"]
    specs = flavor["spec"].get("extraSpecs") or {}
    if key not in specs:
        raise ComputeFault(404, f"Flavor {flavor_id(flavor)} has no extra specs with key {key}.")
    return web.json_response({key: specs[key]})


async def put_spec(request: web.Request) -> web.Response:
    authorize(request, f"{_SPECS}:update")
    key = request.match_info["key"]
    body = _specs({"extra_specs": await json_body(request)})
    if set(body) != {key}:
        raise ComputeFault(400, "Request body and URI mismatch")
    await _change(
        request, lambda spec: spec.update(extraSpecs={**(spec.get("extraSpecs") or {}), **body})
    )
    return web.json_response(body)


async def delete_spec(request: web.Request) -> web.Response:
    authorize(request, f"{_SPECS}:delete")
    key = request.match_info["key"]
    flavor = await find(request, request.match_info["flavor_id"])
    if key not in (flavor["spec"].get("extraSpecs") or {}):
        raise ComputeFault(404, f"Flavor {flavor_id(flavor)} has no extra specs with key {key}.")

    def drop(spec: dict[str, Any]) -> None:
        spec["extraSpecs"] = {k: v for k, v in (spec.get("extraSpecs") or {}).items() if k != key}

    await _change(request, drop)
    return web.Response(status=202)


async def _access_view(request: web.Request, flavor: Obj) -> web.Response:
    projects = flavor["spec"].get("projects") or []
    ids = await project_ids(request, projects)
    fid = flavor_id(flavor)
    return web.json_response(
        {"flavor_access": [{"flavor_id": fid, "tenant_id": ids[p]} for p in projects]}
    )


async def list_access(request: web.Request) -> web.Response:
    authorize(request, _ACCESS)
    flavor = await find(request, request.match_info["flavor_id"])
    if flavor["spec"].get("isPublic", True):
        raise ComputeFault(404, "Access list not available for public flavors.")
    return await _access_view(request, flavor)


async def _project_named(request: web.Request, tenant: Any) -> str:
    """The project object name of a Keystone project id (400 for none)."""
    for p in (await store_of(request).list("Project")).items:
        if tenant in (keystone_id(p), p["metadata"]["name"]):
            return str(p["metadata"]["name"])
    raise ComputeFault(400, f"Project ID {tenant} is not a valid project.")


async def action(request: web.Request) -> web.Response:
    body = await json_body(request)
    if len(body) != 1 or next(iter(body)) not in ("addTenantAccess", "removeTenantAccess"):
        raise ComputeFault(400, "There is either no action or more than one in the request")
    ((name, arg),) = body.items()
    verb = "add_tenant_access" if name == "addTenantAccess" else "remove_tenant_access"
    authorize(request, f"{_ACCESS}:{verb}")
    tenant = arg.get("tenant") if isinstance(arg, dict) else None
    if not isinstance(tenant, str) or not tenant:
        raise ComputeFault(400, "Invalid input for field/attribute tenant.")
    project = await _project_named(request, tenant)
    flavor = await find(request, request.match_info["flavor_id"])
    fid, granted = flavor_id(flavor), flavor["spec"].get("projects") or []
    if name == "addTenantAccess":
        if since(request, "2.7") and flavor["spec"].get("isPublic", True):
            raise ComputeFault(409, "Can not add access to a public flavor.")
        if project in granted:
            raise ComputeFault(
                409,
                f"Flavor access already exists for flavor {fid} and project {tenant} combination.",
            )
    elif project not in granted:
        raise ComputeFault(404, f"Flavor access not found for {fid} / {tenant} combination.")

    def grant(spec: dict[str, Any]) -> None:
        now = [p for p in spec.get("projects") or [] if p != project]
        spec["projects"] = [*now, project] if name == "addTenantAccess" else now

    return await _access_view(request, await _change(request, grant))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v2.1/flavors", create)
    app.router.add_delete("/v2.1/flavors/{flavor_id}", delete)
    app.router.add_post("/v2.1/flavors/{flavor_id}/action", action)
    app.router.add_get("/v2.1/flavors/{flavor_id}/os-flavor-access", list_access)
    app.router.add_post("/v2.1/flavors/{flavor_id}/os-extra_specs", set_specs)
    app.router.add_get("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", show_spec)
    app.router.add_put("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", put_spec)
    app.router.add_delete("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", delete_spec)
