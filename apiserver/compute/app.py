"""The Compute API sub-app: version documents, authentication, microversions, faults.

Owns: ``/compute`` (the version list: v2.0 first, then v2.1 with the
maximum microversion), ``/compute/v2`` and ``/compute/v2.1`` (each version's
document, answered without a token), ``/compute/openapi.json`` (the
OpenAPI document of it all, without a token), the middleware that checks
``X-Auth-Token`` with the identity service, negotiates the microversion and
renders every error as a Nova fault, and the resource routes.

Must never: answer a resource request without a valid token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from apiserver.compute import (
    actions,
    aggregates,
    extensions,
    flavor_manage,
    flavors,
    hosts,
    hypervisors,
    image_proxy,
    keypairs,
    migrations,
    network_proxies,
    openapi,
    quotas,
    server_addresses,
    server_diagnostics,
    server_groups,
    server_passwords,
    server_tags,
    servers,
    services,
    usage,
    usage_audit_log,
    zones,
)
from apiserver.compute.bodies import check_body
from apiserver.compute.context import (
    CALLER,
    CREATES,
    IMAGE_DATA,
    MAX_LIMIT,
    POLICY,
    STORE,
    VIEWS,
)
from apiserver.compute.create_batches import CreateBatches
from apiserver.compute.faults import ComputeFault, render
from apiserver.compute.microversions import (
    MAX,
    MIN,
    VERSION,
    Version,
    check,
    requested,
    stamp,
)
from apiserver.compute.policies import DEFAULTS
from apiserver.image_data import ImageData
from apiserver.policy import Policy
from apiserver.tokens import TokenChecker
from apiserver.urls import base_url
from state.errors import DesiredError, Invalid
from state.sql.views import ComputeViews
from state.store import Store

_UPDATED = {"v2.0": "2011-01-21T11:33:21Z", "v2.1": "2013-07-23T11:33:21Z"}


def _version_doc(request: web.Request, vid: str) -> dict[str, Any]:
    base = f"{base_url(request)}/compute"
    current = vid == "v2.1"
    return {
        "id": vid,
        "links": [{"href": f"{base}/{'v2.1' if current else 'v2'}/", "rel": "self"}],
        "status": "CURRENT" if current else "SUPPORTED",
        "version": str(Version(*MAX)) if current else "",
        "min_version": str(Version(*MIN)) if current else "",
        "updated": _UPDATED[vid],
    }


async def versions(request: web.Request) -> web.Response:
    return web.json_response(
        {"versions": [_version_doc(request, "v2.0"), _version_doc(request, "v2.1")]}
    )


def _one_version(vid: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        doc = _version_doc(request, vid)
        doc["links"].append(
            {"href": "http://docs.openstack.org/", "rel": "describedby", "type": "text/html"}
        )
        minor = str(Version(*MIN)) if vid == "v2.1" else "2"
        doc["media-types"] = [
            {
                "base": "application/json",
                "type": f"application/vnd.openstack.compute+json;version={minor}",
            }
        ]
        return web.json_response({"version": doc})

    return handler


_OPEN = {"", "/", "/v2", "/v2/", "/v2.1", "/v2.1/", "/openapi.json"}


def _middleware(identity: TokenChecker) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        version: Version | None = None
        try:
            tail = request.path.removeprefix("/compute")
            if tail not in _OPEN:
                token = await identity.check(request.headers.get("X-Auth-Token", ""))
                if token is None:
                    raise ComputeFault(401, "The request you have made requires authentication.")
                request[CALLER] = token
            version = check(requested(request.headers))
            request[VERSION] = version
            if request.method in ("POST", "PUT"):
                await check_body(request, version)
            response = await handler(request)
        except ComputeFault as fault:
            response = render(fault)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = render(ComputeFault(exc.status, exc.reason))
        except Invalid as exc:
            response = render(ComputeFault(400, f"Invalid input: {exc.message}"))
        except DesiredError as exc:
            response = render(ComputeFault(exc.status, exc.message))
        stamp(response, version)
        return response

    return middleware


def make_app(
    store: Store,
    identity: TokenChecker,
    views: ComputeViews,
    *,
    max_limit: int = 1000,
    policy_file: Path | None = None,
    image_data: ImageData | None = None,
) -> web.Application:
    """``views``: the conductor's SQL, which server lists and the action log read;
    ``max_limit``: the most servers one list answers; ``policy_file``: rules over the
    defaults of ``policies`` (a bad file raises PolicyError); ``image_data``: the image
    service's stored data, which an image deleted through the image proxy leaves."""
    app = web.Application(middlewares=[_middleware(identity)])
    if image_data is not None:
        app[IMAGE_DATA] = image_data
    app[POLICY] = Policy.load(DEFAULTS, policy_file)
    app[STORE] = store
    app[CREATES] = CreateBatches(store)
    app[VIEWS] = views
    app[MAX_LIMIT] = max_limit
    app.router.add_get("", versions)
    app.router.add_get("/", versions)
    app.router.add_get("/openapi.json", openapi.document)
    for vid, paths in (("v2.0", ("/v2", "/v2/")), ("v2.1", ("/v2.1", "/v2.1/"))):
        for path in paths:
            app.router.add_get(path, _one_version(vid))
    flavors.add_routes(app)
    flavor_manage.add_routes(app)
    servers.add_routes(app)
    server_tags.add_routes(app)
    keypairs.add_routes(app)
    zones.add_routes(app)
    quotas.add_routes(app)
    actions.add_routes(app)
    hypervisors.add_routes(app)
    services.add_routes(app)
    aggregates.add_routes(app)
    server_groups.add_routes(app)
    usage.add_routes(app)
    migrations.add_routes(app)
    network_proxies.add_routes(app)
    server_addresses.add_routes(app)
    server_passwords.add_routes(app)
    server_diagnostics.add_routes(app)
    extensions.add_routes(app)
    hosts.add_routes(app)
    usage_audit_log.add_routes(app)
    image_proxy.add_routes(app)
    return app
