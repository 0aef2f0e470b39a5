"""Keystone's projects over ``Project`` objects: create, update, delete, list, show.

Owns: ``/v3/projects`` and ``/v3/projects/{id}`` and their bodies. A project's
Keystone id is its uid without dashes; its Keystone name is kept as
``apiserver.keystone_names`` says (the object's name, which every object of
the project names and which never changes, or ``spec.displayName``: a rename
changes only that); every project is in the domain ``default``, at the top
(``parent_id`` ``default``) or below another project (``spec.parent``, its
object name: recorded and shown, fixed once made, filtered by; roles are not
inherited down, as Keystone's are only with OS-INHERIT); its tags
(``spec.tags``) are kept and filtered by (``tags``, ``tags-any``,
``not-tags``, ``not-tags-any``; ``/tags`` is ``project_tags``). Listing
projects is for admins and system readers (a user finds its own at
``/v3/auth/projects``); showing one also for a user with a role on it.
Deleting a project first takes every role assignment on it from its users
(as Keystone deletes a project's assignments), so that the tokens scoped to
it die at once and a project made later under the same name inherits no
grant; its EC2 credentials go after it. A project with projects below it is
not deleted (Keystone's 403).

Must never: let a caller without the admin role create, change or delete a
project, or list projects, or show one a caller has no role on, unless it is
a system reader.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from apiserver import keystone_names
from apiserver.identity import caller, fail, keystone_id, project_body, project_ids
from apiserver.keystone_admin import common
from apiserver.keystone_names import shown
from apiserver.urls import base_url
from state.envelope import Obj

_DUPLICATE = (
    "Conflict occurred attempting to store project - it is not permitted to have two "
    "projects with the same name in the same domain"
)


#: Keystone's limits on tags: how many a project has, and what one may be
_MAX_TAGS = 80
_TAG = re.compile(r"^[^,/]{1,255}$")


def tags(value: Any) -> list[str]:
    """``value`` as a project's tags; Keystone's 400 otherwise."""
    if not isinstance(value, list) or not all(isinstance(t, str) and _TAG.match(t) for t in value):
        raise fail(
            400,
            "Invalid input for field 'tags': a list of texts of 1 to 255 characters without "
            "'/' or ','.",
        )
    if len(value) > _MAX_TAGS or len(set(value)) != len(value):
        raise fail(400, f"Invalid input for field 'tags': at most {_MAX_TAGS}, each once.")
    return list(value)


async def _checked(request: web.Request, fields: dict[str, Any]) -> dict[str, Any]:
    """The spec fields ``fields`` (a Keystone project body) set; 400 for what cannot be, 404
    for a parent that does not exist."""
    common.in_default_domain(common.text(fields, "domain_id"))
    if fields.get("is_domain"):
        raise fail(400, "Projects acting as domains are not supported.")
    spec: dict[str, Any] = {}
    parent = common.text(fields, "parent_id")
    if parent not in (None, "default"):
        spec["parent"] = (await common.by_id(common.store(request), "Project", parent))["metadata"][
            "name"
        ]
    if "tags" in fields:
        spec["tags"] = tags(fields["tags"])
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
        await _checked(request, fields),
        f"{_DUPLICATE} : {name}.",
    )
    return web.json_response(
        {"project": project_body(made, base_url(request), await _ids(request))}, status=201
    )


async def _ids(request: web.Request) -> dict[str, str]:
    return project_ids((await common.store(request).list("Project")).items)


async def _visible(request: web.Request) -> list[Obj]:
    """Every project for an admin or a system reader; the projects the caller has a role
    on otherwise."""
    token = await caller(request)
    if common.reads_everything(token):
        return (await common.store(request).list("Project")).items
    return await common.identity(request).projects_of(token)


def _listed(tag_list: str) -> set[str]:
    return {t for t in tag_list.split(",") if t}


def _matches(project: Obj, parent_id: str, query: Any) -> bool:
    enabled = project["spec"].get("enabled", True)
    held = set(project["spec"].get("tags") or [])
    return (
        query.get("name", shown(project)) == shown(project)
        and query.get("domain_id", "default") == "default"
        and query.get("parent_id", parent_id) == parent_id
        and ("enabled" not in query or common.truthy(query["enabled"]) == enabled)
        and not common.truthy(query.get("is_domain", "false"))
        and ("tags" not in query or _listed(query["tags"]) <= held)
        and ("tags-any" not in query or bool(_listed(query["tags-any"]) & held))
        and ("not-tags" not in query or not _listed(query["not-tags"]) <= held)
        and ("not-tags-any" not in query or not _listed(query["not-tags-any"]) & held)
    )


async def index(request: web.Request) -> web.Response:
    await common.reader(request, "identity:list_projects")
    base = base_url(request)
    ids = await _ids(request)
    found = []
    for p in await _visible(request):
        body = project_body(p, base, ids)
        if _matches(p, body["parent_id"], request.query):
            found.append(body)
    return web.json_response({"projects": found, "links": common.links(request, "projects")})


async def one(request: web.Request) -> Obj:
    """The project of the URL's ``project_id`` the caller may see (404 otherwise)."""
    wanted = request.match_info["project_id"]
    for p in await _visible(request):
        if keystone_id(p) == wanted:
            return p
    raise fail(404, f"Could not find project: {wanted}.")


async def show(request: web.Request) -> web.Response:
    project = await one(request)
    return web.json_response(
        {"project": project_body(project, base_url(request), await _ids(request))}
    )


async def update(request: web.Request) -> web.Response:
    await common.admin(request, "identity:update_project")
    project = await one(request)
    fields = await common.member(request, "project")
    if "domain_id" in fields and fields["domain_id"] != "default":
        raise fail(400, "Cannot update domain_id of a project.")
    wanted = await _checked(request, fields)
    if "parent_id" in fields and wanted.pop("parent", None) != project["spec"].get("parent"):
        raise fail(403, "Update of `parent_id` is not allowed.")
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
    body = project_body(changed, base_url(request), await _ids(request))
    return web.json_response({"project": body})


async def delete(request: web.Request) -> web.Response:
    await common.admin(request, "identity:delete_project")
    project = await one(request)
    name = project["metadata"]["name"]
    s = common.store(request)
    if any(p["spec"].get("parent") == name for p in (await s.list("Project")).items):
        raise fail(
            403,
            f"Cannot delete the project {keystone_id(project)} since it is not a leaf in the "
            "hierarchy.",
        )

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
