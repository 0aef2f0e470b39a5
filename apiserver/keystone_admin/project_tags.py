"""Keystone's project tags: ``/v3/projects/{id}/tags[/{tag}]``.

Owns: listing a project's tags, checking one (204 or 404), adding one,
replacing them all, removing one or all, over ``spec.tags`` of the Project
(``apiserver.keystone_admin.projects`` checks them and lists by them).

Must never: let a caller without the admin role change tags, or one that may not
see the project read them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.identity import fail
from apiserver.keystone_admin import common, projects
from state.envelope import Obj


def _held(project: Obj) -> list[str]:
    return list(project["spec"].get("tags") or [])


async def _write(request: web.Request, tags: list[str]) -> list[str]:
    """Sets the URL's project's tags to ``tags`` (checked as Keystone checks them)."""
    await common.admin(request, "identity:update_project_tags")
    project = await projects.one(request)
    wanted = projects.tags(tags)

    def put(spec: dict[str, Any]) -> None:
        if wanted:
            spec["tags"] = wanted
        else:
            spec.pop("tags", None)

    return _held(await common.change(common.store(request), project, put))


async def index(request: web.Request) -> web.Response:
    return web.json_response({"tags": _held(await projects.one(request))})


async def check(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    if tag not in _held(await projects.one(request)):
        raise fail(404, f"Could not find project tag: {tag}.")
    return web.Response(status=204)


async def replace(request: web.Request) -> web.Response:
    body = await common.json_body(request)
    asked = body.get("tags") if isinstance(body, dict) else None
    return web.json_response({"tags": await _write(request, projects.tags(asked))})


async def add(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    held = _held(await projects.one(request))
    await _write(request, held if tag in held else [*held, tag])
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    held = _held(await projects.one(request))
    if tag not in held:
        raise fail(404, f"Could not find project tag: {tag}.")
    await _write(request, [t for t in held if t != tag])
    return web.Response(status=204)


async def remove_all(request: web.Request) -> web.Response:
    await _write(request, [])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    base = "/v3/projects/{project_id}/tags"
    app.router.add_get(base, index)
    app.router.add_put(base, replace)
    app.router.add_delete(base, remove_all)
    app.router.add_get(base + "/{tag}", check)  # also answers HEAD
    app.router.add_put(base + "/{tag}", add)
    app.router.add_delete(base + "/{tag}", remove)
