"""The image service under ``/image``: the Glance v2 subset real clients use.

Owns: version discovery (``/image/``), ``GET /image/v2/images`` (filters
``name``, ``id=in:...``, ``visibility``; ``limit``/``marker`` paging with a
``next`` link), ``GET /image/v2/images/{id}``, ``POST /image/v2/images``
(an Image without data: ``queued``), ``PUT`` and ``GET
/image/v2/images/{id}/file`` (the data, stored by ``apiserver.image_data``;
its size and SHA-256 recorded on the Image, which is then ``active``) and
``DELETE /image/v2/images/{id}``, over Image objects (their uid is the
Glance id). Who sees what: a project its own images, public and community
ones; admins and the ``service`` role (hostd) every image; only admins make
an image public; members of its project, admins and the service role
(snapshots) upload, the former two delete.

Must never: show a project's private image to another project; serve data
that is not whole; let a reader change an image.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from apiserver.compute.names import slug
from apiserver.image_data import ImageData, ImageLimits, TooLarge
from apiserver.request_text import decode
from apiserver.tokens import Token, TokenChecker
from apiserver.urls import base_url
from state.envelope import Obj, Ref
from state.errors import Conflict, DesiredError, Invalid, NotFound
from state.store import Store
from state.validation import validate

STORE = web.AppKey("image_store", Store)
IDENTITY = web.AppKey("image_identity", TokenChecker)
#: where uploaded data lives; absent: uploads are refused
DATA = web.AppKey("image_data", ImageData)
LIMITS = web.AppKey("image_limits", ImageLimits)
CALLER = web.RequestKey("image_caller", Token)
#: the MD5 of uploaded data (Glance's ``checksum``)
MD5_ANNOTATION = "desired/md5"
#: on an Image made by the image service until its data is uploaded (Glance's ``queued``)
QUEUED_ANNOTATION = "desired/queued"
#: Glance's fields of a create and the spec fields they set
_FIELDS = {
    "disk_format": "diskFormat",
    "container_format": "containerFormat",
    "min_disk": "minDiskGiB",
    "min_ram": "minRamMiB",
    "protected": "protected",
    "visibility": "visibility",
}
#: fields of a create that are Glance's own, not free properties
_RESERVED = {"name", "id", "tags", "kernel_id", "ramdisk_id", "status", "owner", *_FIELDS}


class ImageFault(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> web.Response:
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    title = titles.get(status, "Conflict" if status == 409 else "Error")
    shown = html.escape(message.encode("utf-8", "backslashreplace").decode("utf-8"), quote=False)
    return web.Response(
        status=status, text=f"<html><body><h1>{status} {title}</h1>{shown}</body></html>"
    )


def is_active(image: Obj) -> bool:
    """Whether the image is usable: not one the image service made and still waits for
    the data of (Images declared without data are, as simulated hosts need none)."""
    return not (image["metadata"].get("annotations") or {}).get(QUEUED_ANNOTATION)


def queued(obj: Obj) -> Obj:
    """``obj`` (a new Image) marked as waiting for its data."""
    meta = obj.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), QUEUED_ANNOTATION: "true"}
    return obj


def new_image(name: str | None, project: str | None, spec: dict[str, Any], fallback: str) -> Obj:
    """A new Image waiting for its data, valid: shown as ``name`` (``spec.displayName``),
    its object named after it (else ``fallback``) with a random suffix; ``project`` None:
    a public one."""
    spec = {**spec, **({"displayName": name} if name else {})}
    metadata: dict[str, Any] = {
        "name": f"{slug(name or fallback, fallback)}-{secrets.token_hex(4)}"
    }
    if project:
        metadata["project"] = project
    return validate(queued({"kind": "Image", "metadata": metadata, "spec": spec}))


def view(image: Obj, owner_id: str | None) -> dict[str, Any]:
    meta, spec = image["metadata"], image["spec"]
    iid = meta["uid"]
    checksum = spec.get("checksum", "")
    md5 = (meta.get("annotations") or {}).get(MD5_ANNOTATION)
    stamp = meta.get("creationTimestamp", "")[:19] + "Z"
    body: dict[str, Any] = {
        "id": iid,
        "name": spec.get("displayName") or meta["name"],
        "status": "active" if is_active(image) else "queued",
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
        "checksum": md5 or (checksum if len(checksum) == 32 else None),
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


def _sees_all(token: Token) -> bool:
    return "admin" in token.roles or "service" in token.roles


def sees(token: Token, image: Obj) -> bool:
    """Whether the caller sees the image: its project's, a public or community one
    (admins and the service role: every one)."""
    return (
        _sees_all(token)
        or not image["metadata"].get("project")
        or image["metadata"]["project"] == token.project
        or image["spec"].get("visibility") == "community"
    )


async def _visible(request: web.Request) -> list[Obj]:
    token = request[CALLER]
    return [i for i in (await request.app[STORE].list("Image")).items if sees(token, i)]


def _owner(image: Obj, token: Token) -> str | None:
    """The owning project's id as far as the caller knows it: its own project's."""
    return token.project_id if image["metadata"].get("project") == token.project else None


async def _find(request: web.Request) -> Obj:
    wanted = request.match_info["image_id"]
    for image in await _visible(request):
        if image["metadata"]["uid"] == wanted:
            return image
    raise ImageFault(404, f"No image found with ID {wanted}")


def may_change(token: Token, image: Obj, upload: bool = False) -> bool:
    """Whether the caller may change the image: members of its project and admins (and,
    for an ``upload``, the service role: hostd's snapshots)."""
    if "admin" in token.roles or (upload and "service" in token.roles):
        return True
    return "member" in token.roles and image["metadata"].get("project") == token.project


def _may_change(token: Token, image: Obj, upload: bool = False) -> None:
    if not may_change(token, image, upload):
        raise ImageFault(403, "You are not authorized to change this image.")


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Authentication for everything but the version document, and Glance's error pages."""
    try:
        if request.path.removeprefix("/image") not in ("", "/"):
            token = await request.app[IDENTITY].check(request.headers.get("X-Auth-Token", ""))
            if token is None:
                raise ImageFault(401, "This server could not verify that you are authorized.")
            request[CALLER] = token
        return await handler(request)
    except ImageFault as fault:
        return _error(fault.status, fault.message)
    except Invalid as exc:
        return _error(400, exc.message)
    except DesiredError as exc:
        return _error(exc.status, exc.message)


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
    token = request[CALLER]
    images = sorted(await _visible(request), key=lambda i: i["metadata"]["name"])
    q = request.query
    if "name" in q:
        images = [i for i in images if view(i, None)["name"] == q["name"]]
    if q.get("id", "").startswith("in:"):
        wanted = set(q["id"][3:].split(","))
        images = [i for i in images if i["metadata"]["uid"] in wanted]
    if "visibility" in q and q["visibility"] != "all":
        images = [i for i in images if view(i, None)["visibility"] == q["visibility"]]
    if "marker" in q:
        uids = [i["metadata"]["uid"] for i in images]
        if q["marker"] not in uids:
            raise ImageFault(400, f"marker {q['marker']} could not be found.")
        images = images[uids.index(q["marker"]) + 1 :]
    try:
        limit = int(q.get("limit", "25"))
    except ValueError:
        raise ImageFault(400, "limit must be an integer") from None
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
    image = await _find(request)
    return web.json_response(view(image, _owner(image, request[CALLER])))


def _spec_of(body: dict[str, Any]) -> dict[str, Any]:
    """An Image spec from Glance's fields of a create (unknown ones become properties)."""
    spec: dict[str, Any] = {f: body[k] for k, f in _FIELDS.items() if k in body}
    spec.setdefault("visibility", "shared")
    for key, field in (("kernel_id", "kernelImage"), ("ramdisk_id", "ramdiskImage")):
        if body.get(key):
            spec[field] = body[key]
    extra = {k: v for k, v in body.items() if k not in _RESERVED}
    if any(not isinstance(v, str) for v in extra.values()):
        raise ImageFault(400, "Image properties must be strings")
    if extra:
        spec["properties"] = extra
    return spec


async def create_image(request: web.Request) -> web.Response:
    token = request[CALLER]
    if "member" not in token.roles or not token.project:
        raise ImageFault(403, "You are not authorized to create images.")
    try:
        body = await decode(await request.read())
    except ValueError:
        raise ImageFault(400, "Malformed JSON in request body.") from None
    if not isinstance(body, dict):
        raise ImageFault(400, "Malformed JSON in request body.")
    if "id" in body:
        raise ImageFault(400, "Images get their id from the image service here")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 255):
        raise ImageFault(400, "Invalid name")
    spec = _spec_of(body)
    public = spec["visibility"] == "public"
    if public and "admin" not in token.roles:
        raise ImageFault(403, "Only admins may make an image public.")
    made = await request.app[STORE].create(
        new_image(name, None if public else token.project, spec, "image")
    )
    headers = {"Location": f"{base_url(request)}/image/v2/images/{made['metadata']['uid']}"}
    return web.json_response(view(made, _owner(made, token)), status=201, headers=headers)


async def upload(request: web.Request) -> web.Response:
    """Stores the request's body as the image's data; the Image then records its size
    and checksum (409 for an image that has data already)."""
    token, data = request[CALLER], request.app.get(DATA)
    image = await _find(request)
    _may_change(token, image, upload=True)
    if data is None:
        raise ImageFault(503, "This image service stores no data")
    if is_active(image):
        raise ImageFault(409, "Image status transition from active to saving is not allowed")
    limit, why = await _room(request, image)
    try:
        await store_data(
            request.app[STORE], data, image, request.content.iter_chunked(1 << 20), limit, why
        )
    except Conflict as exc:
        raise ImageFault(409, exc.message) from None
    except TooLarge as exc:
        raise ImageFault(413, exc.message) from None
    return web.Response(status=204)


async def _room(request: web.Request, image: Obj) -> tuple[int, str]:
    """The bytes an upload of ``image`` may store (0: any), and why no more: Glance's
    ``image_size_cap``, or what is left of its project's ``user_storage_quota`` (413 when
    nothing is)."""
    limits = request.app[LIMITS]
    cap, project = limits.size_cap, image["metadata"].get("project")
    capped = (cap, f"Image exceeds the size cap of {cap} bytes")
    if not limits.storage_quota or not project:
        return capped
    images = (await request.app[STORE].list("Image", project)).items
    left = limits.storage_quota - sum(int(i["spec"].get("sizeBytes") or 0) for i in images)
    if left <= 0:
        raise ImageFault(413, f"The image storage quota of project {project} is used up.")
    if cap and cap <= left:
        return capped
    return left, f"The size of the data will exceed the limit. {left} bytes remaining."


async def store_data(
    store: Store,
    data: ImageData,
    image: Obj,
    chunks: AsyncIterator[bytes],
    limit: int = 0,
    why: str = "",
) -> Obj:
    """Stores ``chunks`` as the image's data and records their size and checksums on the
    Image (Conflict when another upload of it is under way or it keeps changing;
    ``TooLarge`` past ``limit`` bytes, saying ``why``)."""
    stored = await data.write(image["metadata"]["uid"], chunks, limit, why)
    for _ in range(5):
        current = await store.get(ref_of(image))
        spec = dict(current["spec"], checksum=f"sha256:{stored.sha256}", sizeBytes=stored.size)
        meta = dict(current["metadata"])
        annotations = {**(meta.get("annotations") or {}), MD5_ANNOTATION: stored.md5}
        annotations.pop(QUEUED_ANNOTATION, None)
        meta["annotations"] = annotations
        try:
            written = await store.update(validate(dict(current, metadata=meta, spec=spec)))
        except Conflict:
            continue
        assert written is not None
        return written
    raise Conflict("The image kept changing while its data was stored; retry")


async def download(request: web.Request) -> web.StreamResponse:
    image, data = await _find(request), request.app.get(DATA)
    uid = image["metadata"]["uid"]
    if data is None or not data.has(uid) or not image["spec"].get("checksum"):
        return web.Response(status=204)  # no data stored here, as Glance answers
    md5 = (image["metadata"].get("annotations") or {}).get(MD5_ANNOTATION, "")
    response = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "Content-MD5": md5}
    )
    response.content_length = data.path(uid).stat().st_size
    await response.prepare(request)
    async for chunk in data.read(uid):
        await response.write(chunk)
    await response.write_eof()
    return response


async def delete_image(request: web.Request) -> web.Response:
    token, image = request[CALLER], await _find(request)
    _may_change(token, image)
    if image["spec"].get("protected"):
        raise ImageFault(
            403, f"Image {image['metadata']['uid']} is protected and cannot be deleted."
        )
    try:
        await request.app[STORE].delete(ref_of(image))
    except NotFound:
        pass
    data = request.app.get(DATA)
    if data is not None:
        data.remove(image["metadata"]["uid"])
    return web.Response(status=204)


def ref_of(image: Obj) -> Ref:
    return Ref("Image", image["metadata"].get("project") or None, image["metadata"]["name"])


def make_app(
    store: Store,
    identity: TokenChecker,
    data: ImageData | None = None,
    limits: ImageLimits | None = None,
) -> web.Application:
    """``data``: where uploaded images live (None: the service stores no data); ``limits``:
    how much they may hold (``ImageLimits()``'s defaults when None)."""
    app = web.Application(middlewares=[_guard])
    app[STORE] = store
    app[IDENTITY] = identity
    app[LIMITS] = limits or ImageLimits()
    if data is not None:
        app[DATA] = data
    app.router.add_get("", versions)
    app.router.add_get("/", versions)
    app.router.add_get("/v2/images", list_images)
    app.router.add_post("/v2/images", create_image)
    app.router.add_get("/v2/images/{image_id}", show_image)
    app.router.add_delete("/v2/images/{image_id}", delete_image)
    app.router.add_put("/v2/images/{image_id}/file", upload)
    app.router.add_get("/v2/images/{image_id}/file", download)
    return app
