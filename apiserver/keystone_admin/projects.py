"""Keystone's projects over ``Project`` objects: create, update, delete, list, show.

Owns: ``/v3/projects`` and ``/v3/projects/{id}`` and their bodies. A project's
Keystone id is its uid without dashes; its Keystone name is kept as
``apiserver.keystone_names`` says (the object's name, which every object of
the project names and which never changes, or ``spec.displayName``: a rename
changes only that); every project is a top-level project of the domain
``default`` (its ``parent_id``). Listing projects is for admins and system
readers (a user finds its own at ``/v3/auth/projects``); showing one also for
a user with a role on it. Deleting a
project first takes every role assignment on it from its users (as Keystone
deletes a project's assignments), so that the tokens scoped to it die at
once and a project made later under the same name inherits no grant; its
EC2 credentials go after it.

Must never: let a caller without the admin role create, change or delete a
project, or list projects, or show one a caller has no role on, unless it is
a system reader.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver import keystone_names
from apiserver.identity import caller, fail, keystone_id, project_body
from apiserver.keystone_admin import common
from apiserver.keystone_names import shown
from apiserver.urls import base_url
from state.envelope import Obj

_DUPLICATE = (
    "Conflict occurred attempting to store project - it is not permitted to have two "
    "projects with the same name in the same domain"
)


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    """The spec fields ``fields`` (a Keystone project body) set; 400 for what cannot be."""
    common.in_default_domain(common.text(fields, "domain_id"))
    if common.text(fields, "parent_id") not in (None, "default"):
        raise fail(400, "Projects here are not nested: parent_id can only be 'default'.")
    if fields.get("is_domain"):
        raise fail(400, "Projects acting as domains are not supported.")
    if fields.get("tags"):
        raise fail(400, "Project tags are not kept here.")
    spec: dict[str, Any] = {}
    if "description" in fields:
        spec["description"] = common.text(fields, "description") or ""
    enabled = common.flag(fields, "enabled")
    if enabled is not None:
        spec["enabled"] = enabled
    return spec


async def create(request: web.Request) -> web.Response:
    await common.admin(request, "identity:create_project")
    fields = await common.member(request, "project")
    name = common.name(fields, "Project")
    made = await common.create_named(
        common.store(request),
        "Project",
        name,
        _checked(fields),
        f"{_DUPLICATE} : {name}.",
    )
    return web.json_response({"project": project_body(made, base_url(request))}, status=201)


async def _visible(request: web.Request) -> list[Obj]:
    """Every project for an admin or a system reader; the projects the caller has a role
    on otherwise."""
    token = await caller(request)
    if common.reads_everything(token):
        return (await common.store(request).list("Project")).items
    return await common.identity(request).projects_of(token)


def _matches(project: Obj, query: Any) -> bool:
    enabled = project["spec"].get("enabled", True)
    return (
        query.get("name", shown(project)) == shown(project)
        and query.get("domain_id", "default") == "default"
        and query.get("parent_id", "default") == "default"
        and ("enabled" not in query or common.truthy(query["enabled"]) == enabled)
        and not common.truthy(query.get("is_domain", "false"))
    )


async def index(request: web.Request) -> web.Response:
    await common.reader(request, "identity:list_projects")
    base = base_url(request)
    found = [p for p in await _visible(request) if _matches(p, request.query)]
    return web.json_response(
        {
            "projects": [project_body(p, base) for p in found],
            "links": common.links(request, "projects"),
        }
    )


async def _one(request: web.Request) -> Obj:
    wanted = request.match_info["project_id"]
    for p in await _visible(request):
        if keystone_id(p) == wanted:
            return p
    raise fail(404, f"Could not find project: {wanted}.")


async def show(request: web.Request) -> web.Response:
    return web.json_response({"project": project_body(await _one(request), base_url(request))})


async def update(request: web.Request) -> web.Response:
    await common.admin(request, "identity:update_project")
    project = await _one(request)
    fields = await common.member(request, "project")
    if "domain_id" in fields and fields["domain_id"] != "default":
        raise fail(400, "Cannot update domain_id of a project.")
    wanted = _checked(fields)
    s = common.store(request)
    object_name = project["metadata"]["name"]
    if "name" in fields and (name := common.name(fields, "Project")) != shown(project):
        if await keystone_names.find(s, "Project", name) is not None:
            raise fail(409, f"{_DUPLICATE} : {name}.")
        keystone_names.rename(wanted, name, object_name)
        if "displayName" not in wanted:
            wanted["displayName"] = None

    def apply(spec: dict[str, Any]) -> None:
        for field, value in wanted.items():
            if value is None:
                spec.pop(field, None)
            else:
                spec[field] = value

    changed = await common.change(s, project, apply)
    return web.json_response({"project": project_body(changed, base_url(request))})


async def delete(request: web.Request) -> web.Response:
    await common.admin(request, "identity:delete_project")
    project = await _one(request)
    name = project["metadata"]["name"]
    s = common.store(request)

    def drop(spec: dict[str, Any]) -> None:
        spec["roles"] = [a for a in spec.get("roles") or [] if a.get("project") != name]

    for user in (await s.list("User")).items:
        if any(a.get("project") == name for a in user["spec"].get("roles") or []):
            await common.change(s, user, drop)
            await common.identity(request).revoke_user(str(user["metadata"]["uid"]), name)
    await common.remove(s, project)
    ec2 = common.identity(request).ec2_credentials
    for cred in await ec2.every():  # its EC2 credentials go with it, as Keystone's
        if cred.project == name:
            await ec2.delete(cred)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v3/projects", create)
    app.router.add_get("/v3/projects", index)
    app.router.add_get("/v3/projects/{project_id}", show)
    app.router.add_patch("/v3/projects/{project_id}", update)
    app.router.add_delete("/v3/projects/{project_id}", delete)
