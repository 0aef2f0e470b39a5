"""Glance's interoperable image import, by its ``glance-direct`` method.

Owns: ``GET /image/v2/info/import`` (the import methods offered: only
``glance-direct``), ``PUT /image/v2/images/{id}/stage`` (a queued image's data
kept in the staging area, the image then ``uploading``) and ``POST
/image/v2/images/{id}/import`` (the staged data stored as the image's, checked
against the same limits as an upload; the image is ``active`` when the answer,
202, comes); ``POST /image/v2/tasks``, Glance's older import by task, which
fetches ``import_from`` from a URL: every such URL is refused (400) as not
passing the filter of the hosts it may fetch from, which here is none.
``web-download`` is not offered: it would fetch from wherever a
user points, outside this machine; nor ``copy-image`` and ``glance-download``
(one store, one region).

Must never: import data that was not staged, or stage data over an image that
has its data.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.image_data import ImageData, TooLarge
from apiserver.images import (
    CALLER,
    DATA,
    STAGED_ANNOTATION,
    STORE,
    ImageFault,
    find,
    must_change,
    ref_of,
    room,
    status_of,
    store_data,
)
from apiserver.request_text import decode
from state.envelope import Obj
from state.errors import Conflict
from state.validation import validate

METHODS = ("glance-direct",)


async def info_import(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "import-methods": {
                "description": "Import methods available.",
                "type": "array",
                "value": list(METHODS),
            }
        }
    )


def _data(request: web.Request) -> ImageData:
    data = request.app.get(DATA)
    if data is None:
        raise ImageFault(503, "This image service stores no data")
    return data


async def stage(request: web.Request) -> web.Response:
    image, data = await find(request), _data(request)
    must_change(request[CALLER], image)
    if status_of(image) != "queued":
        raise ImageFault(
            409, f"Image status transition from {status_of(image)} to uploading is not allowed"
        )
    limit, why = await room(request, image)
    try:
        await data.staging().write(
            image["metadata"]["uid"], request.content.iter_chunked(1 << 20), limit, why
        )
    except Conflict as exc:
        raise ImageFault(409, exc.message) from None
    except TooLarge as exc:
        raise ImageFault(413, exc.message) from None
    await _mark_staged(request, image)
    return web.Response(status=204)


async def _mark_staged(request: web.Request, image: Obj) -> None:
    store = request.app[STORE]
    for _ in range(5):
        current = await store.get(ref_of(image))
        meta = dict(current["metadata"])
        meta["annotations"] = {**(meta.get("annotations") or {}), STAGED_ANNOTATION: "true"}
        try:
            await store.update(validate(dict(current, metadata=meta)), current=current)
            return
        except Conflict:
            continue
    raise ImageFault(409, "The image kept changing while its data was staged; retry")


def _method(body: Any) -> str:
    method = body.get("method") if isinstance(body, dict) else None
    name = method.get("name") if isinstance(method, dict) else None
    if not isinstance(name, str):
        raise ImageFault(400, 'An import names its method: {"method": {"name": ...}}')
    if name not in METHODS:
        raise ImageFault(400, f"Import method {name} is not supported here")
    return name


async def import_image(request: web.Request) -> web.Response:
    try:
        body = await decode(await request.read())
    except ValueError:
        raise ImageFault(400, "Malformed JSON in request body.") from None
    _method(body)
    if body.get("stores"):
        raise ImageFault(400, "This image service has one store: name none (all_stores is it)")
    image, data = await find(request), _data(request)
    must_change(request[CALLER], image)
    uid = image["metadata"]["uid"]
    if status_of(image) != "uploading" or not data.staging().has(uid):
        raise ImageFault(409, "Image needs to be staged before 'glance-direct' method can be used")
    limit, why = await room(request, image)
    try:
        await store_data(request.app[STORE], data, image, data.staging().read(uid), limit, why)
    except Conflict as exc:
        raise ImageFault(409, exc.message) from None
    except TooLarge as exc:
        raise ImageFault(413, exc.message) from None
    data.staging().remove(uid)
    return web.Response(status=202)


async def create_task(request: web.Request) -> web.Response:
    """Glance's task create: validated, and an ``import`` task refused for its URL."""
    if "admin" not in request[CALLER].roles:
        raise ImageFault(403, "Only admins create tasks.")
    try:
        body = await decode(await request.read())
    except ValueError:
        raise ImageFault(400, "Malformed JSON in request body.") from None
    task_input = body.get("input") if isinstance(body, dict) else None
    if not isinstance(body, dict) or body.get("type") not in ("import", "api_image_import"):
        raise ImageFault(400, "Invalid type value: a task is of type import")
    if not isinstance(task_input, dict) or not isinstance(task_input.get("import_from"), str):
        raise ImageFault(400, "Input of an import task names import_from, a URL")
    raise ImageFault(
        400,
        f"URI {task_input['import_from']} does not pass filtering: this image service "
        "fetches from no host; stage the data and import it (glance-direct)",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v2/tasks", create_task)
    app.router.add_get("/v2/info/import", info_import)
    app.router.add_put("/v2/images/{image_id}/stage", stage)
    app.router.add_post("/v2/images/{image_id}/import", import_image)
