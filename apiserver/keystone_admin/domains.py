"""Keystone's domains: the one domain, ``default``, read and listed.

Owns: ``/v3/domains`` (filters ``name``, ``enabled``) and
``/v3/domains/{id}``. Every user and project is in ``default`` (named
``Default``); no other domain can be made.

Must never: list domains to a caller that is neither an admin nor a system
reader (Keystone's default), or show ``default`` to a caller without a token.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.identity import DOMAIN, caller, fail
from apiserver.keystone_admin import common


def _body(request: web.Request) -> dict[str, Any]:
    return {
        **DOMAIN,
        "description": "The default domain",
        "enabled": True,
        "tags": [],
        "options": {},
        "links": {"self": common.url(request, f"domains/{DOMAIN['id']}")},
    }


async def index(request: web.Request) -> web.Response:
    await common.reader(request, "identity:list_domains")
    q = request.query
    found = q.get("name", DOMAIN["name"]) == DOMAIN["name"] and (
        "enabled" not in q or common.truthy(q["enabled"])
    )
    return web.json_response(
        {"domains": [_body(request)] if found else [], "links": common.links(request, "domains")}
    )


async def show(request: web.Request) -> web.Response:
    await caller(request)  # every user is in it: anyone with a token may read it
    wanted = request.match_info["domain_id"]
    if wanted != DOMAIN["id"]:
        raise fail(404, f"Could not find domain: {wanted}.")
    return web.json_response({"domain": _body(request)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v3/domains", index)
    app.router.add_get("/v3/domains/{domain_id}", show)
