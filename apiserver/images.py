"""The image service under ``/image``: the Glance v2 reads real clients make.

Owns: version discovery (``/image/``), ``GET /image/v2/images`` (filters
``name``, ``id=in:...``, ``visibility``; ``limit``/``marker`` paging with a
``next`` link) and ``GET /image/v2/images/{id}`` over Image objects (their
uid is the Glance id): the project's own images, public ones, and every
image for admins.

Must never: show a project's private image to another project.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.identity import Identity
from apiserver.tokens import Token
from apiserver.urls import base_url
from state.envelope import Obj
from state.store import Store

STORE = web.AppKey("image_store", Store)
IDENTITY = web.AppKey("image_identity", Identity)


def _error(status: int, message: str) -> web.Response:
    titles = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
    title = titles.get(status, "Error")
    return web.Response(
        status=status, text=f"<html><body><h1>{status} {title}</h1>{message}</body></html>"
    )


def view(image: Obj, owner_id: str | None) -> dict[str, Any]:
    meta, spec = image["metadata"], image["spec"]
    iid = meta["uid"]
    checksum = spec.get("checksum", "")
    stamp = meta.get("creationTimestamp", "")[:19] + "Z"
    body: dict[str, Any] = {
        "id": iid,
        "name": meta["name"],
        "status": "active",
        "visibility": spec.get("visibility", "public" if not meta.get("project") else "private"),
        "container_format": spec.get("containerFormat", "bare"),
        "disk_format": spec.get("diskFormat", "qcow2"),
        "min_disk": spec.get("minDiskGiB", 0),
        "min_ram": spec.get("minRamMiB", 0),
        "size": spec.get("sizeBytes"),
        "virtual_size": None,
        "protected": spec.get("protected", False),
        "os_hidden": False,
        "tags": [],
        "owner": owner_id,
        "checksum": checksum if len(checksum) == 32 else None,
        "os_hash_algo": "sha256" if checksum.startswith("sha256:") else None,
        "os_hash_value": checksum.removeprefix("sha256:")
        if checksum.startswith("sha256:")
        else None,
        "created_at": stamp,
        "updated_at": stamp,
        "self": f"/v2/images/{iid}",
        "file": f"/v2/images/{iid}/file",
        "schema": "/v2/schemas/image",
    }
    for key, prop in (("kernelImage", "kernel_id"), ("ramdiskImage", "ramdisk_id")):
        if spec.get(key):
            body[prop] = spec[key]
    body.update(spec.get("properties") or {})
    return body


async def _visible(request: web.Request, token: Token) -> list[Obj]:
    images = (await request.app[STORE].list("Image")).items
    admin = "admin" in token.roles
    return [
        i
        for i in images
        if admin or not i["metadata"].get("project") or i["metadata"]["project"] == token.project
    ]


def _owner(image: Obj, token: Token) -> str | None:
    """The owning project's id as far as the caller knows it: its own project's."""
    return token.project_id if image["metadata"].get("project") == token.project else None


async def _caller(request: web.Request) -> Token | None:
    return await request.app[IDENTITY].check(request.headers.get("X-Auth-Token", ""))


async def versions(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "versions": [
                {
                    "id": "v2.16",
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": f"{base_url(request)}/image/v2/"}],
                }
            ]
        },
        status=300,
    )


async def list_images(request: web.Request) -> web.Response:
    token = await _caller(request)
    if token is None:
        return _error(401, "This server could not verify that you are authorized.")
    images = sorted(await _visible(request, token), key=lambda i: i["metadata"]["name"])
    q = request.query
    if "name" in q:
        images = [i for i in images if i["metadata"]["name"] == q["name"]]
    if q.get("id", "").startswith("in:"):
        wanted = set(q["id"][3:].split(","))
        images = [i for i in images if i["metadata"]["uid"] in wanted]
    if "visibility" in q and q["visibility"] != "all":
        images = [i for i in images if view(i, None)["visibility"] == q["visibility"]]
    if "marker" in q:
        uids = [i["metadata"]["uid"] for i in images]
        if q["marker"] not in uids:
            return _error(400, f"marker {q['marker']} could not be found.")
        images = images[uids.index(q["marker"]) + 1 :]
    try:
        limit = int(q.get("limit", "25"))
    except ValueError:
        return _error(400, "limit must be an integer")
    page, more = images[:limit], len(images) > limit
    body: dict[str, Any] = {
        "images": [view(i, _owner(i, token)) for i in page],
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    }
    if more and page:
        body["next"] = f"/v2/images?marker={page[-1]['metadata']['uid']}&limit={limit}"
    return web.json_response(body)


async def show_image(request: web.Request) -> web.Response:
    token = await _caller(request)
    if token is None:
        return _error(401, "This server could not verify that you are authorized.")
    wanted = request.match_info["image_id"]
    for image in await _visible(request, token):
        if image["metadata"]["uid"] == wanted:
            return web.json_response(view(image, _owner(image, token)))
    return _error(404, f"No image found with ID {wanted}")


def make_app(store: Store, identity: Identity) -> web.Application:
    app = web.Application()
    app[STORE] = store
    app[IDENTITY] = identity
    app.router.add_get("", versions)
    app.router.add_get("/", versions)
    app.router.add_get("/v2/images", list_images)
    app.router.add_get("/v2/images/{image_id}", show_image)
    return app
