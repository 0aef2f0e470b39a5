"""Compute API os-server-groups: a project's server groups.

Owns: Nova's server group views and verbs over ServerGroup objects up to
2.47 (2.13's ``project_id`` and ``user_id``): create (``policies``: one of
affinity and anti-affinity, and from 2.15 the soft ones; the name is
``spec.displayName`` and the object is named after it with a random suffix),
list (``all_projects`` for admins), show and delete; members are the
project's live servers whose ``spec.serverGroup`` names the group; the
``server_groups`` quota on create, and finding the group a server create's
``group`` hint names (with the ``server_group_members`` quota).

Must never: show or touch another project's group (admins excepted).
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from apiserver.compute.context import (
    allowed,
    authorize,
    caller,
    own_project,
    project_ids,
    store_of,
)
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.names import display_name, slug
from apiserver.request_text import decode
from state import quota
from state.envelope import USER_ANNOTATION, Obj, Ref
from state.errors import NotFound
from state.validation import validate

_RULE = "os_compute_api:os-server-groups"
_POLICIES = ("affinity", "anti-affinity")
#: the policies 2.15 adds
_SOFT_POLICIES = ("soft-affinity", "soft-anti-affinity")


def _members(group: Obj, instances: list[Obj]) -> list[str]:
    name = group["metadata"]["name"]
    return [
        i["metadata"]["uid"]
        for i in instances
        if i["spec"].get("serverGroup") == name and not i["metadata"].get("deletionTimestamp")
    ]


def _view(
    request: web.Request, group: Obj, instances: list[Obj], projects: dict[str, str]
) -> dict[str, Any]:
    """``projects``: Keystone ids by project name."""
    meta = group["metadata"]
    out = {
        "id": meta["uid"],
        "name": group["spec"].get("displayName") or meta["name"],
        "policies": [group["spec"]["policy"]],
        "members": _members(group, instances),
        "metadata": {},
    }
    if since(request, "2.13"):
        out["project_id"] = projects.get(meta.get("project", ""), "")
        out["user_id"] = (meta.get("annotations") or {}).get(USER_ANNOTATION, "")
    return out


def _project(request: web.Request, verb: str) -> str:
    project = own_project(request, "server groups")
    authorize(request, f"{_RULE}:{verb}")
    return project


async def find(request: web.Request, ident: str, project: str) -> Obj:
    """The project's server group with this id (or any project's, for admins)."""
    store = store_of(request)
    scope = None if allowed(request, "context_is_admin") else project
    for group in (await store.list("ServerGroup", scope)).items:
        if group["metadata"]["uid"] == ident:
            return group
    raise ComputeFault(404, f"Instance group {ident} could not be found.")


async def index(request: web.Request) -> web.Response:
    project = _project(request, "index")
    store = store_of(request)
    every = "all_projects" in request.query and allowed(request, f"{_RULE}:index:all_projects")
    scope = None if every else project
    groups = (await store.list("ServerGroup", scope)).items
    instances = (await store.list("Instance", scope)).items
    projects = await project_ids(request, (g["metadata"]["project"] for g in groups))
    return web.json_response(
        {"server_groups": [_view(request, g, instances, projects) for g in groups]}
    )


async def show(request: web.Request) -> web.Response:
    project = _project(request, "show")
    group = await find(request, request.match_info["group_id"], project)
    instances = (await store_of(request).list("Instance", group["metadata"]["project"])).items
    projects = await project_ids(request, [group["metadata"]["project"]])
    return web.json_response({"server_group": _view(request, group, instances, projects)})


async def create(request: web.Request) -> web.Response:
    project = _project(request, "create")
    try:
        body = (await decode(await request.read()))["server_group"]
        name, policies = body["name"], body["policies"]
    except (ValueError, KeyError, TypeError):
        raise ComputeFault(400, "Invalid input for field/attribute server_group.") from None
    name = display_name(name)
    known = _POLICIES + _SOFT_POLICIES if since(request, "2.15") else _POLICIES
    if not isinstance(policies, list) or len(policies) != 1 or policies[0] not in known:
        raise ComputeFault(400, "Invalid input for field/attribute policies.")
    store = store_of(request)
    limit = (await quota.limits(store, project))["server_groups"]
    if 0 <= limit <= len((await store.list("ServerGroup", project)).items):
        raise ComputeFault(403, "Quota exceeded, too many server groups.")
    obj = {
        "kind": "ServerGroup",
        "metadata": {
            "name": f"{slug(name, 'group')}-{secrets.token_hex(3)}",
            "project": project,
            "annotations": {USER_ANNOTATION: caller(request).user_id},
        },
        "spec": {"displayName": name, "policy": policies[0]},
    }
    created = await store.create(validate(obj))
    projects = await project_ids(request, [project])
    return web.json_response({"server_group": _view(request, created, [], projects)})


async def delete(request: web.Request) -> web.Response:
    project = _project(request, "delete")
    group = await find(request, request.match_info["group_id"], project)
    meta = group["metadata"]
    try:
        await store_of(request).delete(Ref("ServerGroup", meta["project"], meta["name"]))
    except NotFound:
        pass
    return web.Response(status=204)


async def group_for_server(request: web.Request, ident: str, project: str, more: int) -> str:
    """The object name of the group a server create's ``group`` hint names, if ``more``
    members still fit its project's ``server_group_members`` quota."""
    store = store_of(request)
    for group in (await store.list("ServerGroup", project)).items:
        if group["metadata"]["uid"] == ident:
            limit = (await quota.limits(store, project))["server_group_members"]
            members = _members(group, (await store.list("Instance", project)).items)
            if 0 <= limit < len(members) + more:
                raise ComputeFault(403, "Quota exceeded, too many servers in group")
            return str(group["metadata"]["name"])
    raise ComputeFault(400, f"Invalid server group {ident}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-server-groups", index)
    app.router.add_post("/v2.1/os-server-groups", create)
    app.router.add_get("/v2.1/os-server-groups/{group_id}", show)
    app.router.add_delete("/v2.1/os-server-groups/{group_id}", delete)
