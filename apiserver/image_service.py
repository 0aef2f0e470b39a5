"""The image service under ``/image``: the Glance v2 subset real clients use, as one
aiohttp sub-app.

Owns: wiring the image service's parts into its application: the images and
their data (``apiserver.images``), updates, tags and deactivation
(``apiserver.image_patch``), members (``apiserver.image_members``), import
(``apiserver.image_import``), metadata definitions (``apiserver.metadefs``) and
schemas (``apiserver.image_schemas``), behind ``apiserver.images.guard``
(authentication, Glance's error pages).

Must never: serve a call but through the guard.
"""

from __future__ import annotations

from aiohttp import web

from apiserver import image_import, image_members, image_patch, image_schemas, metadefs
from apiserver.image_data import ImageData, ImageLimits
from apiserver.images import (
    DATA,
    IDENTITY,
    LIMITS,
    STORE,
    create_image,
    delete_image,
    download,
    guard,
    list_images,
    show_image,
    upload,
    versions,
)
from apiserver.tokens import TokenChecker
from state.store import Store


def make_app(
    store: Store,
    identity: TokenChecker,
    data: ImageData | None = None,
    limits: ImageLimits | None = None,
) -> web.Application:
    """``data``: where uploaded images live (None: the service stores no data); ``limits``:
    how much they may hold (``ImageLimits()``'s defaults when None)."""
    app = web.Application(middlewares=[guard])
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
    for part in (image_patch, image_members, image_import, image_schemas, metadefs):
        part.add_routes(app)
    return app
