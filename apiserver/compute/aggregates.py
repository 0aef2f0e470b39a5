"""Compute API os-aggregates (admins): host aggregates with availability zones and metadata.

Owns: Nova's aggregate views (2.41 adds ``uuid``) and verbs over Aggregate objects: create
(named after the aggregate: its name is ``spec.displayName``, so renaming
keeps the object), show, list, update (name, availability zone), delete
(only when empty), and the actions add_host, remove_host and set_metadata
(``availability_zone`` among the metadata sets the zone). An aggregate's
id is its object's row id in SQL; lists read SQL once it has this API
server's own writes. The scheduler folds an aggregate's metadata and zone
into its hosts (``reconcilers.cluster_view``).

Must never: answer a non-admin; add a host that is not a compute host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, authorize, json_body, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.names import display_name, slug
from apiserver.compute.times import nova_time
from state.envelope import Ref
from state.errors import AlreadyExists, Conflict, NotFound
from state.sql.hosts import ObjectRow
from state.validation import validate

#: tries of a change whose Aggregate object changed meanwhile
_RETRIES = 5


def _view(request: web.Request, row: ObjectRow, members: bool = True) -> dict[str, Any]:
    spec = row.spec
    zone = spec.get("availabilityZone")
    out: dict[str, Any] = {
        "availability_zone": zone,
        "created_at": nova_time(row.created_at),
        "deleted": False,
        "deleted_at": None,
        "id": row.id,
        "name": spec.get("displayName") or row.name,
        "updated_at": nova_time(row.updated_at) if row.generation > 1 else None,
    }
    if since(request, "2.41"):
        out["uuid"] = row.uid
    if members:
        out["hosts"] = list(spec.get("hosts") or [])
        out["metadata"] = {
            **(spec.get("metadata") or {}),
            **({"availability_zone": zone} if zone else {}),
        }
    return out


async def _rows(request: web.Request, rule: str) -> list[ObjectRow]:
    authorize(request, f"os_compute_api:os-aggregates:{rule}")
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    return await views.objects("Aggregate")


async def _find(request: web.Request, rule: str) -> ObjectRow:
    ident = request.match_info["aggregate_id"]
    for row in await _rows(request, rule):
        if str(row.id) == ident:
            return row
    raise ComputeFault(404, f"Aggregate {ident} could not be found.")


def _text(value: Any, field: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    return display_name(value, field)


def _taken(rows: list[ObjectRow], name: str, but: int | None = None) -> bool:
    return any((r.spec.get("displayName") or r.name) == name and r.id != but for r in rows)


async def index(request: web.Request) -> web.Response:
    return web.json_response(
        {"aggregates": [_view(request, r) for r in await _rows(request, "index")]}
    )


async def create(request: web.Request) -> web.Response:
    rows = await _rows(request, "create")
    body = await json_body(request, "aggregate")
    name = _text(body.get("name"), "name")
    assert name is not None
    zone = _text(body.get("availability_zone"), "availability_zone", optional=True)
    if _taken(rows, name):
        raise ComputeFault(409, f"Aggregate {name} already exists.")
    spec: dict[str, Any] = {"displayName": name, "hosts": [], "metadata": {}}
    if zone:
        spec["availabilityZone"] = zone
    obj = {"kind": "Aggregate", "metadata": {"name": slug(name, "aggregate", 63)}, "spec": spec}
    store = store_of(request)
    try:
        created = await store.create(validate(obj))
    except AlreadyExists:
        raise ComputeFault(409, f"Aggregate {name} already exists.") from None
    row = await _row_of(request, created["metadata"]["uid"])
    return web.json_response({"aggregate": _view(request, row, members=False)})


async def _row_of(request: web.Request, uid: str) -> ObjectRow:
    """The SQL row of an aggregate this API server just wrote."""
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    for row in await views.objects("Aggregate"):
        if row.uid == uid:
            return row
    raise ComputeFault(503, "The aggregate is not in SQL yet; retry")


async def show(request: web.Request) -> web.Response:
    return web.json_response({"aggregate": _view(request, await _find(request, "show"))})


async def _change(
    request: web.Request, row: ObjectRow, mutate: Callable[[dict[str, Any]], None]
) -> web.Response:
    """Applies ``mutate`` to the aggregate's spec (again if it changed meanwhile) and
    answers with the aggregate as it then is."""
    store = store_of(request)
    for _ in range(_RETRIES):
        try:
            obj = await store.get(Ref("Aggregate", None, row.name))
        except NotFound:
            raise ComputeFault(404, f"Aggregate {row.id} could not be found.") from None
        spec = dict(obj["spec"])
        mutate(spec)
        obj["spec"] = spec
        try:
            updated = await store.update(validate(obj))
        except Conflict:
            continue
        assert updated is not None
        return web.json_response({"aggregate": _view(request, await _row_of(request, row.uid))})
    raise ComputeFault(409, f"Aggregate {row.id} kept changing; retry")


async def update(request: web.Request) -> web.Response:
    row = await _find(request, "update")
    body = await json_body(request, "aggregate")
    if not body or set(body) - {"name", "availability_zone"}:
        raise ComputeFault(400, "Invalid input for field/attribute aggregate.")
    name = _text(body["name"], "name") if "name" in body else None
    zone = _text(body.get("availability_zone"), "availability_zone", optional=True)
    if name and _taken(await _rows(request, "update"), name, but=row.id):
        raise ComputeFault(409, f"Aggregate {name} already exists.")

    def mutate(spec: dict[str, Any]) -> None:
        if name:
            spec["displayName"] = name
        if "availability_zone" in body:
            if zone:
                spec["availabilityZone"] = zone
            else:
                spec.pop("availabilityZone", None)

    return await _change(request, row, mutate)


async def delete(request: web.Request) -> web.Response:
    row = await _find(request, "delete")
    if row.spec.get("hosts"):
        raise ComputeFault(
            400,
            f"Cannot remove host from aggregate {row.id}. Reason: Host aggregate is not empty.",
        )
    try:
        await store_of(request).delete(Ref("Aggregate", None, row.name))
    except NotFound:
        pass
    return web.Response(status=200)


async def action(request: web.Request) -> web.Response:
    row = await _find(request, "index")
    body = await json_body(request)
    if len(body) != 1:
        raise ComputeFault(400, "There is either no action or more than one in the request")
    ((name, arg),) = body.items()
    if not isinstance(arg, dict):
        raise ComputeFault(400, f"Invalid input for field/attribute {name}.")
    if name in ("add_host", "remove_host"):
        return await _membership(request, row, name, _text(arg.get("host"), "host"))
    if name == "set_metadata":
        return await _set_metadata(request, row, arg.get("metadata"))
    raise ComputeFault(400, f"Invalid input for field/attribute {name}.")


async def _membership(
    request: web.Request, row: ObjectRow, verb: str, host: str | None
) -> web.Response:
    authorize(request, f"os_compute_api:os-aggregates:{verb}")
    assert host is not None
    hosts = list(row.spec.get("hosts") or [])
    if verb == "add_host":
        if await store_of(request).get_or_none(Ref("Host", None, host)) is None:
            raise ComputeFault(404, f"Compute host {host} could not be found.")
        if host in hosts:
            raise ComputeFault(409, f"Aggregate {row.id} already has host {host}.")
    elif host not in hosts:
        raise ComputeFault(404, f"Aggregate {row.id} has no host {host}.")

    def mutate(spec: dict[str, Any]) -> None:
        now = [h for h in spec.get("hosts") or [] if h != host]
        spec["hosts"] = [*now, host] if verb == "add_host" else now

    return await _change(request, row, mutate)


async def _set_metadata(request: web.Request, row: ObjectRow, metadata: Any) -> web.Response:
    authorize(request, "os_compute_api:os-aggregates:set_metadata")
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and 0 < len(k) <= 255 and (v is None or isinstance(v, str))
        for k, v in metadata.items()
    ):
        raise ComputeFault(400, "Invalid input for field/attribute metadata.")

    def mutate(spec: dict[str, Any]) -> None:
        own = dict(spec.get("metadata") or {})
        for key, value in metadata.items():
            if key == "availability_zone":
                if value:
                    spec["availabilityZone"] = value
                else:
                    spec.pop("availabilityZone", None)
            elif value is None:
                own.pop(key, None)
            else:
                own[key] = value
        spec["metadata"] = own

    return await _change(request, row, mutate)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-aggregates", index)
    app.router.add_post("/v2.1/os-aggregates", create)
    app.router.add_get("/v2.1/os-aggregates/{aggregate_id}", show)
    app.router.add_put("/v2.1/os-aggregates/{aggregate_id}", update)
    app.router.add_delete("/v2.1/os-aggregates/{aggregate_id}", delete)
    app.router.add_post("/v2.1/os-aggregates/{aggregate_id}/action", action)
