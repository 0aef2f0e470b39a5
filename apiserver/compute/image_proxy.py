"""Compute API image proxy (until 2.36): ``/images``, ``/images/detail``, ``/images/{id}``
and ``/images/{id}/metadata[/{key}]``.

Owns: Nova's views of the Image objects the caller sees (as the image
service shows them: its project's, public and community ones), their
filters (``name``, ``status``, ``server``, ``type``, ``minRam``,
``minDisk``, ``changes-since``), newest first, paged by ``limit``/``marker``
with ``images_links``; deleting an image (with its stored data); reading and
changing its properties as Nova's image metadata (within the project's
``metadata_items`` quota). From 2.36 every route is 404, as Nova removed
them.

Must never: show an image the image service would not show the caller, or
let anyone but its project's members and admins change or delete it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import IMAGE_DATA, caller, json_body, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.paging import page
from apiserver.compute.server_views import links
from apiserver.compute.servers import metadata_within_quota
from apiserver.images import is_active, listed, may_change, ref_of, sees
from apiserver.urls import base_url
from state.envelope import Obj
from state.errors import Conflict, NotFound


def _removed(request: web.Request) -> None:
    if since(request, "2.36"):
        raise ComputeFault(404, "The resource could not be found.")


def _stamp(obj: Obj) -> str:
    return str(obj["metadata"].get("creationTimestamp", ""))[:19] + "Z"


def _metadata(image: Obj) -> dict[str, str]:
    return dict(image["spec"].get("properties") or {})


def _links(request: web.Request, iid: str) -> list[dict[str, str]]:
    glance = {
        "href": f"{base_url(request)}/image/v2/images/{iid}",
        "rel": "alternate",
        "type": "application/vnd.openstack.image",
    }
    return [*links(request, "images", iid), glance]


def _brief(request: web.Request, image: Obj) -> dict[str, Any]:
    meta = image["metadata"]
    name = image["spec"].get("displayName") or meta["name"]
    return {"id": meta["uid"], "name": name, "links": _links(request, meta["uid"])}


def _status(image: Obj) -> str:
    return "ACTIVE" if is_active(image) else "SAVING"


def _full(request: web.Request, image: Obj) -> dict[str, Any]:
    spec, properties = image["spec"], _metadata(image)
    view = _brief(request, image)
    view.update(
        {
            "minRam": spec.get("minRamMiB", 0),
            "minDisk": spec.get("minDiskGiB", 0),
            "metadata": properties,
            "created": _stamp(image),
            "updated": _stamp(image),
            "status": _status(image),
            "progress": 100 if is_active(image) else 25,
            "OS-EXT-IMG-SIZE:size": spec.get("sizeBytes"),
        }
    )
    server = properties.get("instance_uuid")
    if server:
        view["server"] = {"id": server, "links": links(request, "servers", server)}
    return view


async def _visible(request: web.Request) -> list[Obj]:
    token = caller(request)
    images = [i for i in (await store_of(request).list("Image")).items if sees(token, i)]
    images.sort(key=lambda i: (_stamp(i), i["metadata"]["uid"]), reverse=True)
    return images


def _number(request: web.Request, param: str) -> int:
    raw = request.query.get(param, "0")
    if not raw.isdigit():
        raise ComputeFault(400, f"Invalid {param} filter [{raw}]")
    return int(raw)


def _matches(request: web.Request, image: Obj) -> bool:
    q, spec, properties = request.query, image["spec"], _metadata(image)
    name = spec.get("displayName") or image["metadata"]["name"]
    checks = (
        ("name", lambda v: name == v),
        ("status", lambda v: _status(image) == v.upper()),
        ("server", lambda v: properties.get("instance_uuid") == v.rstrip("/").rsplit("/")[-1]),
        ("type", lambda v: properties.get("image_type") == v),
        ("changes-since", lambda v: _stamp(image) >= v[:19]),
    )
    if any(param in q and not check(q[param]) for param, check in checks):
        return False
    return spec.get("minRamMiB", 0) >= _number(request, "minRam") and spec.get(
        "minDiskGiB", 0
    ) >= _number(request, "minDisk")


async def _listed(request: web.Request, path: str) -> tuple[list[Obj], dict[str, Any]]:
    _removed(request)
    token = caller(request)  # Glance's default list: no pending shares, others' community
    images = [i for i in await _visible(request) if _matches(request, i) and listed(token, i)]
    shown, more = page(request, images, lambda i: str(i["metadata"]["uid"]), path)
    return shown, {"images_links": more} if more else {}


async def index(request: web.Request) -> web.Response:
    images, more = await _listed(request, "images")
    return web.json_response({"images": [_brief(request, i) for i in images], **more})


async def detail(request: web.Request) -> web.Response:
    images, more = await _listed(request, "images/detail")
    return web.json_response({"images": [_full(request, i) for i in images], **more})


async def _find(request: web.Request) -> Obj:
    _removed(request)
    wanted = request.match_info["image_id"]
    for image in await _visible(request):
        if image["metadata"]["uid"] == wanted:
            return image
    raise ComputeFault(404, "Image not found.")


async def show(request: web.Request) -> web.Response:
    return web.json_response({"image": _full(request, await _find(request))})


async def delete(request: web.Request) -> web.Response:
    image = await _find(request)
    if not may_change(caller(request), image) or image["spec"].get("protected"):
        raise ComputeFault(403, "You are not allowed to delete the image.")
    try:
        await store_of(request).delete(ref_of(image))
    except NotFound:
        pass
    data = request.app.get(IMAGE_DATA)
    if data is not None:
        data.remove(image["metadata"]["uid"])
    return web.Response(status=204)


async def _set_properties(request: web.Request, image: Obj, properties: dict[str, str]) -> None:
    if not may_change(caller(request), image):
        raise ComputeFault(403, "You are not authorized to change this image.")
    project = image["metadata"].get("project") or caller(request).project
    await metadata_within_quota(request, project, len(properties))
    try:
        await store_of(request).update(dict(image, spec=dict(image["spec"], properties=properties)))
    except Conflict:
        raise ComputeFault(409, "The image changed meanwhile; try again") from None


def _pairs(body: dict[str, Any], field: str) -> dict[str, str]:
    value = body.get(field)
    if not isinstance(value, dict):
        raise ComputeFault(400, "Malformed request body")
    return {str(k): str(v) for k, v in value.items()}


async def list_metadata(request: web.Request) -> web.Response:
    return web.json_response({"metadata": _metadata(await _find(request))})


async def merge_metadata(request: web.Request) -> web.Response:
    image = await _find(request)
    merged = {**_metadata(image), **_pairs(await json_body(request), "metadata")}
    await _set_properties(request, image, merged)
    return web.json_response({"metadata": merged})


async def replace_metadata(request: web.Request) -> web.Response:
    image = await _find(request)
    replaced = _pairs(await json_body(request), "metadata")
    await _set_properties(request, image, replaced)
    return web.json_response({"metadata": replaced})


async def show_item(request: web.Request) -> web.Response:
    key, properties = request.match_info["key"], _metadata(await _find(request))
    if key not in properties:
        raise ComputeFault(404, "The resource could not be found.")
    return web.json_response({"meta": {key: properties[key]}})


async def put_item(request: web.Request) -> web.Response:
    image, key = await _find(request), request.match_info["key"]
    meta = _pairs(await json_body(request), "meta")
    if key not in meta:
        raise ComputeFault(400, "Request body and URI mismatch")
    await _set_properties(request, image, {**_metadata(image), key: meta[key]})
    return web.json_response({"meta": meta})


async def delete_item(request: web.Request) -> web.Response:
    image, key = await _find(request), request.match_info["key"]
    properties = _metadata(image)
    if properties.pop(key, None) is None:
        raise ComputeFault(404, "Invalid metadata key")
    await _set_properties(request, image, properties)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2.1/images", index)
    r.add_get("/v2.1/images/detail", detail)
    r.add_get("/v2.1/images/{image_id}", show)
    r.add_delete("/v2.1/images/{image_id}", delete)
    r.add_get("/v2.1/images/{image_id}/metadata", list_metadata)
    r.add_post("/v2.1/images/{image_id}/metadata", merge_metadata)
    r.add_put("/v2.1/images/{image_id}/metadata", replace_metadata)
    r.add_get("/v2.1/images/{image_id}/metadata/{key}", show_item)
    r.add_put("/v2.1/images/{image_id}/metadata/{key}", put_item)
    r.add_delete("/v2.1/images/{image_id}/metadata/{key}", delete_item)
