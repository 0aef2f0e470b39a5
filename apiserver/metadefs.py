"""Glance's metadata definitions (metadefs) under ``/image/v2/metadefs``.

Owns: the resource types metadefs apply to (a fixed catalog of the kinds this
cloud has: ``GET /metadefs/resource_types``); namespaces (``GET``, ``POST
/metadefs/namespaces``; ``GET``, ``PUT``, ``DELETE /metadefs/namespaces/{ns}``)
as MetadefNamespace objects (found by their namespace name; those made here
named after it, ``object_name``, so that two racing creates cannot both win); and each namespace's
objects, properties and tags (``.../{objects|properties|tags}`` and
``.../{objects|properties|tags}/{name}``, tags also all at once) and resource
type associations (``.../resource_types``, ``.../resource_types/{name}``),
kept in its spec. Admins write (Glance's default policy); everyone reads
public namespaces, a project its own private ones.

Must never: delete a protected namespace; show a private namespace to
another project; let anyone but an admin change one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from apiserver.images import CALLER, STORE, ImageFault, sees_all
from apiserver.request_text import decode
from apiserver.tokens import Token
from state.envelope import Obj, Ref, now
from state.errors import AlreadyExists, Conflict, NotFound
from state.validation import validate

#: the resource types this cloud has that metadefs describe, and when they came to be
RESOURCE_TYPES = (
    "OS::Glance::Image",
    "OS::Nova::Aggregate",
    "OS::Nova::Flavor",
    "OS::Nova::Server",
)
_EPOCH = "2026-01-01T00:00:00Z"
#: a namespace's collections under its path, by their spec field
COLLECTIONS = {"objects": "objects", "properties": "properties", "tags": "tags"}
#: the fields a property definition must have
_PROPERTY_REQUIRED = ("name", "title", "type")


def object_name(namespace: str) -> str:
    """The MetadefNamespace object name of ``namespace`` (any text Glance takes)."""
    return "ns-" + hashlib.sha256(namespace.encode()).hexdigest()[:40]


def _ref(ns: Obj) -> Ref:
    return Ref("MetadefNamespace", None, ns["metadata"]["name"])


def _reads(token: Token, ns: Obj) -> bool:
    spec = ns["spec"]
    return (
        sees_all(token)
        or spec.get("visibility") == "public"
        or (bool(token.project_id) and spec.get("owner") == token.project_id)
    )


def _admin(token: Token) -> None:
    if "admin" not in token.roles:
        raise ImageFault(403, "Only admins change metadata definitions.")


async def _named(request: web.Request, name: str) -> Obj | None:
    """The namespace called ``name``, whatever its object's name (declared ones too)."""
    for ns in (await request.app[STORE].list("MetadefNamespace")).items:
        if ns["spec"]["namespace"] == name:
            return ns
    return None


async def _find(request: web.Request) -> Obj:
    name = request.match_info["namespace"]
    ns = await _named(request, name)
    if ns is None or not _reads(request[CALLER], ns):
        raise ImageFault(404, f"Metadata definition namespace={name} was not found.")
    return ns


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await decode(await request.read()) if request.can_read_body else {}
    except ValueError:
        raise ImageFault(400, "Malformed JSON in request body.") from None
    if not isinstance(body, dict):
        raise ImageFault(400, "Malformed JSON in request body.")
    return body


def _association(item: dict[str, Any]) -> dict[str, Any]:
    doc = {"name": item["name"], "created_at": item.get("createdAt", _EPOCH)}
    doc["updated_at"] = item.get("updatedAt", doc["created_at"])
    for key, field in (("prefix", "prefix"), ("properties_target", "propertiesTarget")):
        if field in item:
            doc[key] = item[field]
    return doc


def _properties(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {p["name"]: {k: v for k, v in p.items() if k != "name"} for p in items}


def namespace_view(ns: Obj) -> dict[str, Any]:
    spec, meta = ns["spec"], ns["metadata"]
    stamp = meta.get("creationTimestamp", _EPOCH)[:19] + "Z"
    doc: dict[str, Any] = {
        "namespace": spec["namespace"],
        "display_name": spec.get("displayName", spec["namespace"]),
        "description": spec.get("description", ""),
        "visibility": spec.get("visibility", "private"),
        "protected": spec.get("protected", False),
        "owner": spec.get("owner", ""),
        "created_at": stamp,
        "updated_at": stamp,
        "self": f"/v2/metadefs/namespaces/{spec['namespace']}",
        "schema": "/v2/schemas/metadefs/namespace",
    }
    if spec.get("resourceTypes"):
        doc["resource_type_associations"] = [_association(r) for r in spec["resourceTypes"]]
    if spec.get("properties"):
        doc["properties"] = _properties(spec["properties"])
    for key in ("objects", "tags"):
        if spec.get(key):
            doc[key] = spec[key]
    return doc


def _namespace_spec(body: dict[str, Any], owner: str) -> dict[str, Any]:
    """A namespace's own fields from Glance's create or update body (400 when wrong)."""
    name = body.get("namespace")
    if not isinstance(name, str) or not 0 < len(name) <= 80:
        raise ImageFault(400, "namespace: a name of 1 to 80 characters is required")
    spec: dict[str, Any] = {"namespace": name, "owner": body.get("owner") or owner}
    for key, field in (
        ("display_name", "displayName"),
        ("description", "description"),
        ("visibility", "visibility"),
        ("protected", "protected"),
    ):
        if body.get(key) is not None:
            spec[field] = body[key]
    return spec


async def list_resource_types(request: web.Request) -> web.Response:
    types = [{"name": n, "created_at": _EPOCH, "updated_at": _EPOCH} for n in RESOURCE_TYPES]
    return web.json_response({"resource_types": types})


async def list_namespaces(request: web.Request) -> web.Response:
    token = request[CALLER]
    items = (await request.app[STORE].list("MetadefNamespace")).items
    shown = sorted(
        (namespace_view(n) for n in items if _reads(token, n)), key=lambda d: d["namespace"]
    )
    if "visibility" in request.query:
        shown = [d for d in shown if d["visibility"] == request.query["visibility"]]
    if "resource_types" in request.query:
        wanted = set(request.query["resource_types"].split(","))
        shown = [
            d
            for d in shown
            if wanted & {a["name"] for a in d.get("resource_type_associations", [])}
        ]
    return web.json_response(
        {
            "namespaces": shown,
            "first": "/v2/metadefs/namespaces",
            "schema": "/v2/schemas/metadefs/namespaces",
        }
    )


async def create_namespace(request: web.Request) -> web.Response:
    token = request[CALLER]
    _admin(token)
    body = await _body(request)
    spec = _namespace_spec(body, token.project_id)
    stamp = now()
    for item in body.get("resource_type_associations") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ImageFault(400, "resource_type_associations: each names a resource type")
        spec.setdefault("resourceTypes", []).append(_association_spec(item, stamp))
    obj = {"kind": "MetadefNamespace", "metadata": {"name": object_name(spec["namespace"])}}
    if await _named(request, spec["namespace"]) is not None:
        raise ImageFault(409, f"Namespace {spec['namespace']} already exists.")
    try:
        made = await request.app[STORE].create(validate({**obj, "spec": spec}))
    except AlreadyExists:
        raise ImageFault(409, f"Namespace {spec['namespace']} already exists.") from None
    return web.json_response(namespace_view(made), status=201)


async def show_namespace(request: web.Request) -> web.Response:
    return web.json_response(namespace_view(await _find(request)))


async def update_namespace(request: web.Request) -> web.Response:
    token, ns = request[CALLER], await _find(request)
    _admin(token)
    own = _namespace_spec(await _body(request), ns["spec"].get("owner", ""))
    kept = {k: v for k, v in ns["spec"].items() if k in ("resourceTypes", *COLLECTIONS)}
    spec = {**own, **kept}
    store = request.app[STORE]
    if spec["namespace"] == ns["spec"]["namespace"]:
        return web.json_response(namespace_view(await _write(request, ns, spec)))
    renamed = {"kind": "MetadefNamespace", "metadata": {"name": object_name(spec["namespace"])}}
    if await _named(request, spec["namespace"]) is not None:
        raise ImageFault(409, f"Namespace {spec['namespace']} already exists.")
    try:
        made = await store.create(validate({**renamed, "spec": spec}))
    except AlreadyExists:
        raise ImageFault(409, f"Namespace {spec['namespace']} already exists.") from None
    await store.delete(_ref(ns))
    return web.json_response(namespace_view(made))


async def delete_namespace(request: web.Request) -> web.Response:
    token, ns = request[CALLER], await _find(request)
    _admin(token)
    if ns["spec"].get("protected"):
        raise ImageFault(
            403, f"Namespace {ns['spec']['namespace']} is protected and cannot be deleted."
        )
    try:
        await request.app[STORE].delete(_ref(ns))
    except NotFound:
        pass
    return web.Response(status=204)


async def _write(request: web.Request, ns: Obj, spec: dict[str, Any]) -> Obj:
    spec = {k: v for k, v in spec.items() if v != []}
    try:
        written = await request.app[STORE].update(validate(dict(ns, spec=spec)), current=ns)
    except Conflict as exc:
        raise ImageFault(409, exc.message) from None
    if written is None:
        raise ImageFault(404, f"Metadata definition namespace={spec['namespace']} was not found.")
    return written


def _association_spec(body: dict[str, Any], stamp: str) -> dict[str, Any]:
    name = body.get("name")
    if name not in RESOURCE_TYPES:
        raise ImageFault(400, f"Resource type {name} is not one of {', '.join(RESOURCE_TYPES)}")
    item = {"name": name, "createdAt": stamp, "updatedAt": stamp}
    for key, field in (("prefix", "prefix"), ("properties_target", "propertiesTarget")):
        if isinstance(body.get(key), str):
            item[field] = body[key]
    return item


async def associate(request: web.Request) -> web.Response:
    token, ns = request[CALLER], await _find(request)
    _admin(token)
    item = _association_spec(await _body(request), now())
    associations = list(ns["spec"].get("resourceTypes") or [])
    if any(a["name"] == item["name"] for a in associations):
        raise ImageFault(409, f"Resource type {item['name']} is already associated.")
    await _write(request, ns, {**ns["spec"], "resourceTypes": [*associations, item]})
    return web.json_response(_association(item), status=201)


async def list_associations(request: web.Request) -> web.Response:
    ns = await _find(request)
    items = [_association(a) for a in ns["spec"].get("resourceTypes") or []]
    return web.json_response({"resource_type_associations": items})


async def dissociate(request: web.Request) -> web.Response:
    token, ns = request[CALLER], await _find(request)
    _admin(token)
    name, associations = request.match_info["name"], list(ns["spec"].get("resourceTypes") or [])
    if not any(a["name"] == name for a in associations):
        raise ImageFault(404, f"Resource type {name} is not associated with this namespace.")
    kept = [a for a in associations if a["name"] != name]
    await _write(request, ns, {**ns["spec"], "resourceTypes": kept})
    return web.Response(status=204)


def _item_of(collection: str, body: dict[str, Any], name: str = "") -> dict[str, Any]:
    """One definition of ``collection`` from its body (``name`` from the path for tags)."""
    item = {**body, **({"name": name} if name and "name" not in body else {})}
    if not isinstance(item.get("name"), str) or not 0 < len(item["name"]) <= 255:
        raise ImageFault(400, "A definition needs a name of 1 to 255 characters")
    if collection == "tags":
        item = {"name": item["name"]}
    if collection == "properties":
        missing = [k for k in _PROPERTY_REQUIRED if k not in item]
        if missing:
            raise ImageFault(400, f"A property definition needs {', '.join(missing)}")
    stamp = now()
    return {**item, "created_at": stamp, "updated_at": stamp}


def _shown(collection: str, item: dict[str, Any]) -> dict[str, Any]:
    if collection == "objects":
        return {**item, "schema": "/v2/schemas/metadefs/object"}
    return dict(item)


async def list_items(request: web.Request) -> web.Response:
    ns, collection = await _find(request), request.match_info["collection"]
    items = ns["spec"].get(COLLECTIONS[collection]) or []
    if collection == "properties":
        return web.json_response({"properties": _properties(items)})
    body: dict[str, Any] = {collection: [_shown(collection, i) for i in items]}
    if collection == "objects":
        body["schema"] = "v2/schemas/metadefs/objects"
    return web.json_response(body)


async def create_item(request: web.Request) -> web.Response:
    token, ns = request[CALLER], await _find(request)
    collection = request.match_info["collection"]
    _admin(token)
    field = COLLECTIONS[collection]
    item = _item_of(collection, await _body(request), request.match_info.get("name", ""))
    items = list(ns["spec"].get(field) or [])
    if any(i["name"] == item["name"] for i in items):
        raise ImageFault(409, f"A {collection[:-1]} named {item['name']} already exists.")
    await _write(request, ns, {**ns["spec"], field: [*items, item]})
    return web.json_response(_shown(collection, item), status=201)


async def replace_tags(request: web.Request) -> web.Response:
    """Glance's create of many tags: they replace the namespace's tags."""
    token, ns = request[CALLER], await _find(request)
    _admin(token)
    given = (await _body(request)).get("tags")
    if not isinstance(given, list) or not all(isinstance(t, dict) for t in given):
        raise ImageFault(400, 'tags must be a list of {"name": ...}')
    tags = [_item_of("tags", t) for t in given]
    if len({t["name"] for t in tags}) != len(tags):
        raise ImageFault(409, "A tag is named twice.")
    await _write(request, ns, {**ns["spec"], "tags": tags})
    return web.json_response({"tags": [{"name": t["name"]} for t in tags]}, status=201)


async def delete_tags(request: web.Request) -> web.Response:
    token, ns = request[CALLER], await _find(request)
    _admin(token)
    await _write(request, ns, {k: v for k, v in ns["spec"].items() if k != "tags"})
    return web.Response(status=204)


def _one(ns: Obj, collection: str, name: str) -> dict[str, Any]:
    for item in ns["spec"].get(COLLECTIONS[collection]) or []:
        if item["name"] == name:
            return dict(item)
    raise ImageFault(404, f"Metadata definition {collection[:-1]} {name} was not found.")


async def show_item(request: web.Request) -> web.Response:
    ns, collection = await _find(request), request.match_info["collection"]
    return web.json_response(_shown(collection, _one(ns, collection, request.match_info["name"])))


async def update_item(request: web.Request) -> web.Response:
    token, ns = request[CALLER], await _find(request)
    collection, name = request.match_info["collection"], request.match_info["name"]
    _admin(token)
    old = _one(ns, collection, name)
    item = _item_of(collection, await _body(request), name)
    item["created_at"] = old.get("created_at", item["created_at"])
    field = COLLECTIONS[collection]
    items = [i for i in ns["spec"].get(field) or [] if i["name"] != name]
    if any(i["name"] == item["name"] for i in items):
        raise ImageFault(409, f"A {collection[:-1]} named {item['name']} already exists.")
    await _write(request, ns, {**ns["spec"], field: [*items, item]})
    return web.json_response(_shown(collection, item))


async def delete_item(request: web.Request) -> web.Response:
    token, ns = request[CALLER], await _find(request)
    collection, name = request.match_info["collection"], request.match_info["name"]
    _admin(token)
    _one(ns, collection, name)
    field = COLLECTIONS[collection]
    items = [i for i in ns["spec"].get(field) or [] if i["name"] != name]
    await _write(request, ns, {**ns["spec"], field: items})
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    base = "/v2/metadefs/namespaces"
    one = base + "/{namespace}"
    each = one + "/{collection:objects|properties|tags}"
    r.add_get("/v2/metadefs/resource_types", list_resource_types)
    r.add_get(base, list_namespaces)
    r.add_post(base, create_namespace)
    r.add_get(one, show_namespace)
    r.add_put(one, update_namespace)
    r.add_delete(one, delete_namespace)
    r.add_get(one + "/resource_types", list_associations)
    r.add_post(one + "/resource_types", associate)
    r.add_delete(one + "/resource_types/{name}", dissociate)
    r.add_get(each, list_items)
    r.add_post(one + "/{collection:objects|properties}", create_item)
    r.add_post(one + "/tags", replace_tags)
    r.add_delete(one + "/tags", delete_tags)
    r.add_post(one + "/{collection:tags}/{name}", create_item)
    r.add_get(each + "/{name}", show_item)
    r.add_put(each + "/{name}", update_item)
    r.add_delete(each + "/{name}", delete_item)
