"""Changes to an image after its create: Glance's JSON-patch update, tags, deactivation.

Owns: ``PATCH /image/v2/images/{id}`` (media types
``application/openstack-images-v2.1-json-patch`` and its v2.0 form; ``add``,
``replace`` and ``remove`` of Glance's top-level fields and free properties,
applied to the image's Glance document all or nothing and turned back into its
spec by the create's own rules), ``PUT``/``DELETE
/image/v2/images/{id}/tags/{tag}`` and ``POST
/image/v2/images/{id}/actions/deactivate`` and ``.../reactivate``. A new owner,
or a move to or from ``public``, moves the Image to that project (cluster
scope for public) under the same uid, so its Glance id and data stay.

Must never: change a read-only or reserved field (403), another project's
image, an active image's formats, or an owner for anyone but an admin.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.images import (
    CALLER,
    STORE,
    ImageFault,
    Owners,
    find,
    must_change,
    owner_project,
    ref_of,
    refuse_reserved,
    spec_of,
    status_of,
    view,
)
from apiserver.request_text import decode
from state.envelope import Obj
from state.errors import Conflict, NotFound
from state.store import Store
from state.validation import validate

#: the media types of Glance's image patches
PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)
_OPS = ("add", "replace", "remove")
#: Glance's fields every image has: they are replaced, never removed
_CORE = (
    "name",
    "visibility",
    "protected",
    "min_disk",
    "min_ram",
    "disk_format",
    "container_format",
    "tags",
    "owner",
    "os_hidden",
)
#: what an image keeps of its spec through a patch (not Glance's fields)
_KEPT = ("url", "checksum", "sizeBytes", "kernelCmdline", "deactivated", "members")
#: Glance's limit on an image's tags
MAX_TAGS = 128


def _operations(body: Any) -> list[tuple[str, str, Any]]:
    """(op, field, value) of each operation of a patch, in either of Glance's forms."""
    if not isinstance(body, list):
        raise ImageFault(400, "Request body must be a JSON array of operation objects.")
    operations = []
    for item in body:
        if not isinstance(item, dict):
            raise ImageFault(400, "Operations must be JSON objects.")
        if "op" in item:
            op, path = item["op"], item.get("path")
        else:
            named = [o for o in _OPS if o in item]
            if len(named) != 1:
                raise ImageFault(
                    400, "Operation objects must contain exactly one of add, replace, remove"
                )
            op, path = named[0], item[named[0]]
        if op not in _OPS:
            raise ImageFault(400, f"Invalid operation: {op!r}")
        if not isinstance(path, str) or not path.startswith("/") or "/" in path[1:]:
            raise ImageFault(400, f"Invalid JSON pointer for this resource: {path!r}")
        field = path[1:].replace("~1", "/").replace("~0", "~")
        if op != "remove" and "value" not in item:
            raise ImageFault(400, f"Operation {op} on {path} must have a value")
        operations.append((op, field, item.get("value")))
    return operations


def _apply(doc: dict[str, Any], operations: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """``doc`` (an image's changeable Glance fields) after the patch's operations."""
    doc = dict(doc)
    for op, field, value in operations:
        refuse_reserved(field)
        if op == "remove":
            if field in _CORE:
                raise ImageFault(403, f"Attribute '{field}' cannot be removed.")
            if field not in doc:
                raise ImageFault(409, f"Property {field} does not exist.")
            del doc[field]
        elif op == "replace" and field not in doc and field not in _CORE:
            raise ImageFault(409, f"Property {field} does not exist.")
        else:
            doc[field] = value
    return doc


def _changeable(document: dict[str, Any]) -> dict[str, Any]:
    """The fields of an image's Glance document that a patch may change."""
    fixed = {"id", "status", "checksum", "size", "virtual_size", "created_at", "updated_at"}
    fixed |= {"self", "file", "schema", "os_hash_algo", "os_hash_value"}
    return {k: v for k, v in document.items() if k not in fixed}


async def move(store: Store, image: Obj, project: str | None) -> Obj:
    """The image moved to ``project`` (None: cluster scope, as a public image): made there
    under its name and uid, then deleted where it was."""
    meta = {k: v for k, v in image["metadata"].items() if k != "project"}
    if project:
        meta["project"] = project
    made = await store.create(
        validate({"kind": "Image", "metadata": meta, "spec": image["spec"]}),
        uid=image["metadata"]["uid"],
    )
    try:
        await store.delete(ref_of(image))
    except NotFound:
        pass
    return made


async def update_image(request: web.Request) -> web.Response:
    token, store = request[CALLER], request.app[STORE]
    if request.content_type not in PATCH_TYPES:
        raise ImageFault(415, f"Unsupported Content-Type {request.content_type}")
    try:
        operations = _operations(await decode(await request.read()))
    except ValueError:
        raise ImageFault(400, "Malformed JSON in request body.") from None
    image = await find(request)
    must_change(token, image)
    owners = await Owners.of(request)
    before = _changeable(view(image, owners.id_of(image)))
    after = _apply(before, operations)
    for key in ("disk_format", "container_format"):
        if after.get(key) != before.get(key) and status_of(image) != "queued":
            raise ImageFault(403, f"Forbidden to modify '{key}' of {status_of(image)} image.")
    if after.get("visibility") == "public" != before.get("visibility"):
        if "admin" not in token.roles:
            raise ImageFault(403, "Only admins may make an image public.")
    project = image["metadata"].get("project")
    if after.get("owner") != before.get("owner"):
        if "admin" not in token.roles:
            raise ImageFault(403, "Only admins may change the owner of an image.")
        project = owner_project(token, owners, after["owner"])
    fields = {k: v for k, v in after.items() if k != "owner"}
    spec = spec_of(fields)
    spec.update({k: image["spec"][k] for k in _KEPT if k in image["spec"]})
    if spec["visibility"] == "public":
        project = None
    elif not project:
        project = token.project or None
        if not project:
            raise ImageFault(400, "A public image made private needs an owner: give one")
    changed = await _write(store, image, spec)
    if (changed["metadata"].get("project") or None) != project:
        changed = await move(store, changed, project)
    return web.json_response(view(changed, owners.id_of(changed)))


async def _write(store: Store, image: Obj, spec: dict[str, Any]) -> Obj:
    """The image with ``spec`` stored (409 when it changed since it was read)."""
    if spec == image["spec"]:
        return image
    try:
        written = await store.update(validate(dict(image, spec=spec)), current=image)
    except Conflict as exc:
        raise ImageFault(409, exc.message) from None
    if written is None:
        raise ImageFault(404, f"No image found with ID {image['metadata']['uid']}")
    return written


async def add_tag(request: web.Request) -> web.Response:
    image, tag = await find(request), request.match_info["tag"]
    must_change(request[CALLER], image)
    tags = list(image["spec"].get("tags") or [])
    if not 0 < len(tag) <= 255:
        raise ImageFault(400, "A tag has 1 to 255 characters")
    if tag not in tags:
        if len(tags) >= MAX_TAGS:
            raise ImageFault(413, f"Maximum number of tags ({MAX_TAGS}) exceeded.")
        await _write(request.app[STORE], image, {**image["spec"], "tags": [*tags, tag]})
    return web.Response(status=204)


async def delete_tag(request: web.Request) -> web.Response:
    image, tag = await find(request), request.match_info["tag"]
    must_change(request[CALLER], image)
    tags = list(image["spec"].get("tags") or [])
    if tag not in tags:
        raise ImageFault(404, f"Tag {tag} not found.")
    tags.remove(tag)
    spec = {**image["spec"], "tags": tags}
    if not tags:
        del spec["tags"]
    await _write(request.app[STORE], image, spec)
    return web.Response(status=204)


async def deactivate(request: web.Request) -> web.Response:
    """Glance's deactivate (``reactivate`` in the path: undo it): only of an image that
    has its data; doing it twice changes nothing."""
    image, action = await find(request), request.match_info["action"]
    must_change(request[CALLER], image)
    status = status_of(image)
    if status not in ("active", "deactivated"):
        raise ImageFault(403, f"Not allowed to {action} image in status '{status}'")
    spec = {k: v for k, v in image["spec"].items() if k != "deactivated"}
    if action == "deactivate":
        spec["deactivated"] = True
    await _write(request.app[STORE], image, spec)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_patch("/v2/images/{image_id}", update_image)
    app.router.add_put("/v2/images/{image_id}/tags/{tag}", add_tag)
    app.router.add_delete("/v2/images/{image_id}/tags/{tag}", delete_tag)
    app.router.add_post("/v2/images/{image_id}/actions/{action:deactivate|reactivate}", deactivate)
