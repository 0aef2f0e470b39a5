"""The image service's images: Glance v2's image documents and their core calls.

Owns: version discovery (``/image/``), ``GET /image/v2/images`` (filters
``name``, ``id=in:...``, ``visibility``, ``member_status``, ``status``,
``disk_format``, ``container_format``, ``owner``, ``tag``, ``size``,
``size_min``, ``size_max``, ``os_hidden``; ``sort`` or ``sort_key`` and
``sort_dir``, newest first unless asked; ``limit``/``marker`` paging with a
``next`` link), ``GET /image/v2/images/{id}``, ``POST
/image/v2/images`` (an Image without data: ``queued``), ``PUT`` and ``GET
/image/v2/images/{id}/file`` (the data, stored by ``apiserver.image_data``;
its size and SHA-256 recorded on the Image, which is then ``active``) and
``DELETE /image/v2/images/{id}``, over Image objects (their uid is the
Glance id, their project the owner); the rules of who sees and changes an
image (``sees``, ``may_change``), used by the Compute API's image proxy too.
Who sees what: a project its own images, public ones, community ones, and
shared ones it is a member of; admins and the ``service`` role (hostd) every
image; only admins make an image public or give it another owner; members of
its project, admins and the service role (snapshots) upload, the former two
delete. Updates, members, import and schemas live in their own modules
(``apiserver.image_*``), the sub-app in ``apiserver.image_service``.

Must never: show a project's private image to another project; serve data
that is not whole, or a deactivated image's data to anyone but admins and
hosts; let a reader change an image.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from apiserver.compute.names import slug
from apiserver.identity import keystone_id_of
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
#: on a queued Image whose data is staged for an import (Glance's ``uploading``)
STAGED_ANNOTATION = "desired/staged"
#: Glance's fields of a create and the spec fields they set
_FIELDS = {
    "disk_format": "diskFormat",
    "container_format": "containerFormat",
    "min_disk": "minDiskGiB",
    "min_ram": "minRamMiB",
    "protected": "protected",
    "visibility": "visibility",
    "os_hidden": "hidden",
}
#: fields of a create that are Glance's own, not free properties
_RESERVED = {"name", "tags", "kernel_id", "ramdisk_id", "owner", *_FIELDS}
#: Glance's fields no request sets
READ_ONLY = {
    "id",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "file",
    "self",
    "schema",
    "direct_url",
    "locations",
    "os_hash_algo",
    "os_hash_value",
    "stores",
}
#: the visibilities an image may have
VISIBILITIES = ("public", "private", "shared", "community")


class ImageFault(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> web.Response:
    titles = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        409: "Conflict",
        413: "Request Entity Too Large",
        415: "Unsupported Media Type",
    }
    title = titles.get(status, "Error")
    shown = html.escape(message.encode("utf-8", "backslashreplace").decode("utf-8"), quote=False)
    return web.Response(
        status=status, text=f"<html><body><h1>{status} {title}</h1>{shown}</body></html>"
    )


def status_of(image: Obj) -> str:
    """Glance's status: ``deactivated``; ``uploading`` (data staged for an import) or
    ``queued`` (made by the image service, its data still awaited); else ``active``
    (Images declared without data are, as simulated hosts need none)."""
    annotations = image["metadata"].get("annotations") or {}
    if image["spec"].get("deactivated"):
        return "deactivated"
    if annotations.get(STAGED_ANNOTATION):
        return "uploading"
    return "queued" if annotations.get(QUEUED_ANNOTATION) else "active"


def is_active(image: Obj) -> bool:
    """Whether the image is usable: it has its data and is not deactivated."""
    return status_of(image) == "active"


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
    """Glance's document of ``image``, its owner shown as ``owner_id``."""
    meta, spec = image["metadata"], image["spec"]
    iid = meta["uid"]
    checksum = spec.get("checksum", "")
    md5 = (meta.get("annotations") or {}).get(MD5_ANNOTATION)
    stamp = meta.get("creationTimestamp", "")[:19] + "Z"
    body: dict[str, Any] = {
        "id": iid,
        "name": spec.get("displayName") or meta["name"],
        "status": status_of(image),
        "visibility": spec.get("visibility", "public" if not meta.get("project") else "private"),
        "container_format": spec.get("containerFormat", "bare"),
        "disk_format": spec.get("diskFormat", "qcow2"),
        "min_disk": spec.get("minDiskGiB", 0),
        "min_ram": spec.get("minRamMiB", 0),
        "size": spec.get("sizeBytes"),
        "virtual_size": None,
        "protected": spec.get("protected", False),
        "os_hidden": spec.get("hidden", False),
        "tags": list(spec.get("tags") or []),
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


def sees_all(token: Token) -> bool:
    """Whether the caller sees every image: admins and the service role (hosts)."""
    return "admin" in token.roles or "service" in token.roles


def member_status(token: Token, image: Obj) -> str | None:
    """The caller's project's answer to the sharing of a shared image (``pending``,
    ``accepted``, ``rejected``), None when it is no member of it."""
    if image["spec"].get("visibility") != "shared" or not token.project_id:
        return None
    for member in image["spec"].get("members") or []:
        if member["projectId"] == token.project_id:
            return str(member["status"])
    return None


def owns(token: Token, image: Obj) -> bool:
    """Whether the image belongs to the caller's project."""
    return bool(token.project) and image["metadata"].get("project") == token.project


def sees(token: Token, image: Obj) -> bool:
    """Whether the caller sees the image: its project's, a public or community one, or a
    shared one its project is a member of, whatever it answered (admins and the service
    role: every one)."""
    return (
        sees_all(token)
        or not image["metadata"].get("project")
        or owns(token, image)
        or image["spec"].get("visibility") == "community"
        or member_status(token, image) is not None
    )


async def visible(request: web.Request) -> list[Obj]:
    """The images the caller sees."""
    token = request[CALLER]
    return [i for i in (await request.app[STORE].list("Image")).items if sees(token, i)]


class Owners:
    """The Keystone ids of the projects images belong to, read once per request."""

    def __init__(self, projects: list[Obj]) -> None:
        self.ids = {p["metadata"]["name"]: keystone_id_of(p["metadata"]["uid"]) for p in projects}

    @staticmethod
    async def of(request: web.Request) -> Owners:
        """The owners as the caller knows them: its token's project id for its own
        project (an external Keystone's projects are no Project objects here)."""
        owners = Owners((await request.app[STORE].list("Project")).items)
        token = request[CALLER]
        if token.project and token.project_id:
            owners.ids[token.project] = token.project_id
        return owners

    def id_of(self, image: Obj) -> str | None:
        """The image's owner: its project's Keystone id (None for a public image; the
        project's name when no such project is known here, as for an owner an admin gave)."""
        project = image["metadata"].get("project")
        return self.ids.get(project, project) if project else None

    def project_of(self, owner: str) -> str:
        """The project an owner id names: the known project of that id, else the id itself
        (Glance takes any owner id from an admin); Invalid when it cannot name one."""
        for name, pid in self.ids.items():
            if pid == owner:
                return name
        if not NAME.fullmatch(owner):
            raise ImageFault(400, f"Invalid owner {owner!r}: no project has that id")
        return owner


#: what an owner id given for no known project must look like to serve as a project name
NAME = re.compile(r"[a-z0-9]([-a-z0-9._]{0,251}[a-z0-9])?")


async def find(request: web.Request) -> Obj:
    """The image ``{image_id}`` of the path, as the caller sees it (404 otherwise)."""
    wanted = request.match_info["image_id"]
    for image in await visible(request):
        if image["metadata"]["uid"] == wanted:
            return image
    raise ImageFault(404, f"No image found with ID {wanted}")


def may_change(token: Token, image: Obj, upload: bool = False) -> bool:
    """Whether the caller may change the image: members of its project and admins (and,
    for an ``upload``, the service role: hostd's snapshots)."""
    if "admin" in token.roles or (upload and "service" in token.roles):
        return True
    return "member" in token.roles and owns(token, image)


def must_change(token: Token, image: Obj, upload: bool = False) -> None:
    """403 unless the caller may change the image (``may_change``)."""
    if not may_change(token, image, upload):
        raise ImageFault(403, "You are not authorized to change this image.")


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
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
    except web.HTTPException as exc:  # the router's 404 and 405
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)
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


#: list filters that compare one field of Glance's document with the asked value
_EQUAL_FILTERS = ("name", "status", "disk_format", "container_format", "owner", "size")
#: the fields a list sorts by
_SORT_KEYS = (
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
    "min_disk",
    "min_ram",
    "visibility",
    "owner",
)


def _sort_order(q: Any) -> list[tuple[str, bool]]:
    """(key, descending) pairs of a list's ``sort`` (``key:dir,...``) or ``sort_key`` and
    ``sort_dir`` parameters; Glance's default: newest first."""
    if "sort" in q:
        pairs = [part.partition(":")[::2] for part in q["sort"].split(",")]
        order = [(key, (way or "desc")) for key, way in pairs]
    else:
        keys, ways = q.getall("sort_key", ["created_at"]), q.getall("sort_dir", ["desc"])
        order = [(k, ways[min(i, len(ways) - 1)]) for i, k in enumerate(keys)]
    for key, way in order:
        if key not in _SORT_KEYS:
            raise ImageFault(400, f"Invalid sort key: {key}")
        if way not in ("asc", "desc"):
            raise ImageFault(400, f"Invalid sort direction: {way}")
    return [(key, way == "desc") for key, way in order]


def _sorted(docs: list[dict[str, Any]], order: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    """``docs`` in ``order``, ties by id; a missing value sorts as the smallest."""
    docs = sorted(docs, key=lambda d: str(d["id"]), reverse=order[-1][1])
    for key, descending in reversed(order):
        docs.sort(
            key=lambda d: (d[key] is not None, 0 if d[key] is None else d[key]),
            reverse=descending,
        )
    return docs


def _size(q: Any, param: str) -> int | None:
    if param not in q:
        return None
    try:
        return int(q[param])
    except ValueError:
        raise ImageFault(400, f"{param} must be an integer") from None


_MEMBER_STATUSES = ("pending", "accepted", "rejected", "all")


def listed(token: Token, image: Obj, visibility: str = "", status: str = "accepted") -> bool:
    """Whether a list asking for ``visibility`` (``""``: none asked) and member status
    ``status`` shows the image: Glance leaves out others' community images unless asked
    for, and shared images of which the caller is a member unless it gave that answer."""
    shown = view(image, None)["visibility"]
    if visibility and visibility != "all" and shown != visibility:
        return False
    answer = None if owns(token, image) else member_status(token, image)
    if answer is not None:
        return status in (answer, "all")
    if sees_all(token) or owns(token, image):
        return True
    return shown == "public" or (shown == "community" and visibility in ("community", "all"))


async def list_images(request: web.Request) -> web.Response:
    token, q = request[CALLER], request.query
    visibility, status = q.get("visibility", ""), q.get("member_status", "accepted")
    if visibility and visibility not in (*VISIBILITIES, "all"):
        raise ImageFault(400, f"Invalid visibility value: {visibility}")
    if status not in _MEMBER_STATUSES:
        raise ImageFault(400, f"Invalid status value: {status}")
    owners, order = await Owners.of(request), _sort_order(q)
    hidden = q.get("os_hidden", "false").lower() in ("true", "1", "yes", "on")
    images = [i for i in await visible(request) if listed(token, i, visibility, status)]
    docs = _sorted([view(i, owners.id_of(i)) for i in images], order)
    docs = [d for d in docs if d["os_hidden"] == hidden]
    for key in _EQUAL_FILTERS:
        if key in q:
            docs = [d for d in docs if str(d[key]) == q[key]]
    low, high = _size(q, "size_min"), _size(q, "size_max")
    if low is not None or high is not None:
        docs = [
            d
            for d in docs
            if d["size"] is not None
            and (low is None or d["size"] >= low)
            and (high is None or d["size"] <= high)
        ]
    if "tag" in q:
        docs = [d for d in docs if set(q.getall("tag")) <= set(d["tags"])]
    if q.get("id", "").startswith("in:"):
        wanted = set(q["id"][3:].split(","))
        docs = [d for d in docs if d["id"] in wanted]
    if "marker" in q:
        ids = [d["id"] for d in docs]
        if q["marker"] not in ids:
            raise ImageFault(400, f"marker {q['marker']} could not be found.")
        docs = docs[ids.index(q["marker"]) + 1 :]
    try:
        limit = int(q.get("limit", "25"))
    except ValueError:
        raise ImageFault(400, "limit must be an integer") from None
    if limit < 0:
        raise ImageFault(400, "limit must be a positive integer")
    page, more = docs[:limit], len(docs) > limit
    body: dict[str, Any] = {"images": page, "first": "/v2/images", "schema": "/v2/schemas/images"}
    if more and page:
        body["next"] = f"/v2/images?marker={page[-1]['id']}&limit={limit}"
    return web.json_response(body)


async def show_image(request: web.Request) -> web.Response:
    image = await find(request)
    return web.json_response(view(image, (await Owners.of(request)).id_of(image)))


def refuse_reserved(key: str) -> None:
    """403 for a field no request may set: Glance's read-only ones and its own
    ``os_glance_*`` namespace."""
    if key in READ_ONLY:
        raise ImageFault(403, f"Attribute '{key}' is read-only.")
    if key.startswith("os_glance") or key in ("deleted", "deleted_at", "location"):
        raise ImageFault(403, f"Attribute '{key}' is reserved.")


def spec_of(body: dict[str, Any]) -> dict[str, Any]:
    """An Image spec from Glance's fields (of a create, or an image's after a patch);
    unknown ones become properties. 400 for a value Glance would refuse (the kind's
    schema checks the rest)."""
    for key in body:
        refuse_reserved(key)
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not 0 < len(name) <= 255):
        raise ImageFault(400, "Invalid name: at most 255 characters")
    if body.get("visibility", "shared") not in VISIBILITIES:
        raise ImageFault(400, f"Invalid visibility value: {body['visibility']}")
    spec: dict[str, Any] = {f: body[k] for k, f in _FIELDS.items() if body.get(k) is not None}
    spec.setdefault("visibility", "shared")
    if name:
        spec["displayName"] = name
    for key, field in (("kernel_id", "kernelImage"), ("ramdisk_id", "ramdiskImage")):
        if body.get(key):
            spec[field] = body[key]
    tags = body.get("tags")
    if tags is not None and (
        not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags)
    ):
        raise ImageFault(400, "tags must be a list of non-empty strings")
    if tags:
        spec["tags"] = list(dict.fromkeys(tags))
    extra = {k: v for k, v in body.items() if k not in _RESERVED}
    if any(not isinstance(v, str) for v in extra.values()):
        raise ImageFault(400, "Image properties must be strings")
    if extra:
        spec["properties"] = extra
    return spec


def owner_project(token: Token, owners: Owners, owner: Any) -> str:
    """The project an image given ``owner`` belongs to: any project for an admin, the
    caller's own for anyone else (403 otherwise)."""
    if not isinstance(owner, str) or not owner:
        raise ImageFault(400, "owner must be a project id")
    if "admin" in token.roles:
        return owners.project_of(owner)
    if owner != token.project_id:
        raise ImageFault(403, f"You are not permitted to create images owned by '{owner}'.")
    return token.project


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
    owners = await Owners.of(request)
    project = token.project
    if body.get("owner") is not None:
        project = owner_project(token, owners, body["owner"])
    spec = spec_of({k: v for k, v in body.items() if k != "owner"})
    name = spec.pop("displayName", None)
    public = spec["visibility"] == "public"
    if public and "admin" not in token.roles:
        raise ImageFault(403, "Only admins may make an image public.")
    made = await request.app[STORE].create(
        new_image(name, None if public else project, spec, "image")
    )
    headers = {"Location": f"{base_url(request)}/image/v2/images/{made['metadata']['uid']}"}
    return web.json_response(view(made, owners.id_of(made)), status=201, headers=headers)


async def upload(request: web.Request) -> web.Response:
    """Stores the request's body as the image's data; the Image then records its size
    and checksum (409 for an image that has data already)."""
    token, data = request[CALLER], request.app.get(DATA)
    image = await find(request)
    must_change(token, image, upload=True)
    if data is None:
        raise ImageFault(503, "This image service stores no data")
    if status_of(image) != "queued":
        raise ImageFault(
            409, f"Image status transition from {status_of(image)} to saving is not allowed"
        )
    limit, why = await room(request, image)
    try:
        await store_data(
            request.app[STORE], data, image, request.content.iter_chunked(1 << 20), limit, why
        )
    except Conflict as exc:
        raise ImageFault(409, exc.message) from None
    except TooLarge as exc:
        raise ImageFault(413, exc.message) from None
    return web.Response(status=204)


async def room(request: web.Request, image: Obj) -> tuple[int, str]:
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
        annotations.pop(STAGED_ANNOTATION, None)
        meta["annotations"] = annotations
        try:
            written = await store.update(validate(dict(current, metadata=meta, spec=spec)))
        except Conflict:
            continue
        assert written is not None
        return written
    raise Conflict("The image kept changing while its data was stored; retry")


async def download(request: web.Request) -> web.StreamResponse:
    image, data = await find(request), request.app.get(DATA)
    if image["spec"].get("deactivated") and not sees_all(request[CALLER]):
        raise ImageFault(
            403, "The requested image has been deactivated. Image data download is forbidden."
        )
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
    token, image = request[CALLER], await find(request)
    must_change(token, image)
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
