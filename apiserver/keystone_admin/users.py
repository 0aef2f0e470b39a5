"""Keystone's users over ``User`` objects: create, update, delete, list, show, a user's
projects, and a user changing its own password.

Owns: ``/v3/users``, ``/v3/users/{id}``, ``/v3/users/{id}/projects`` and
``/v3/users/{id}/password``, and their bodies. A user's Keystone id is its
uid without dashes; its Keystone name is kept as ``apiserver.keystone_names``
says (the object's name, which tokens and role assignments follow and which
never changes, or ``spec.displayName``: a rename changes only that);
``default_project_id`` is kept as the project's object name
(``spec.defaultProject``); ``email`` and ``description`` as spec fields;
other attributes as Keystone's extra attributes (``spec.extra``: strings,
numbers, booleans, answered back as they came); the option ``ignore_lockout_failure_attempts`` as
``spec.ignoreLockoutFailureAttempts``. A password given in plain text is
hashed here, in the password-check threads, and only its hash is kept; a
password changed revokes the user's tokens issued until then, as Keystone's.

Must never: keep, log or answer a password; let anyone but an admin create,
change or delete users, or anyone but an admin or a system reader list them;
show a user, or its projects, to anyone but those or itself; change a password
without its original.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver import keystone_names
from apiserver.identity import DOMAIN, fail, keystone_id, project_body, project_ids
from apiserver.keystone_admin import common
from apiserver.keystone_names import shown
from apiserver.urls import base_url
from state.envelope import Obj
from state.store import Store


async def _projects_by_name(s: Store) -> dict[str, Obj]:
    return {p["metadata"]["name"]: p for p in (await s.list("Project")).items}


def body(request: web.Request, user: Obj, projects: dict[str, Obj]) -> dict[str, Any]:
    spec = user["spec"]
    uid = keystone_id(user)
    out: dict[str, Any] = {
        **(spec.get("extra") or {}),
        "id": uid,
        "name": shown(user),
        "domain_id": DOMAIN["id"],
        "enabled": spec.get("enabled", True),
        "password_expires_at": None,
        "options": {
            "ignore_lockout_failure_attempts": spec.get("ignoreLockoutFailureAttempts", False)
        },
        "links": {"self": common.url(request, f"users/{uid}")},
    }
    default = projects.get(spec.get("defaultProject", ""))
    if default is not None:
        out["default_project_id"] = keystone_id(default)
    for field in ("email", "description"):
        if field in spec:
            out[field] = spec[field]
    return out


#: the attributes of a user Keystone has itself; others are its extra attributes
_KEYSTONE_FIELDS = frozenset(
    (
        "id",
        "name",
        "domain_id",
        "enabled",
        "password",
        "default_project_id",
        "options",
        "email",
        "description",
        "links",
        "password_expires_at",
        "federated",
    )
)


async def _spec_changes(request: web.Request, fields: dict[str, Any]) -> dict[str, Any]:
    """What a Keystone user body asks of a User's spec (None: remove the field); the
    password hashed."""
    common.in_default_domain(common.text(fields, "domain_id"))
    changes: dict[str, Any] = {}
    extra = {k: v for k, v in fields.items() if k not in _KEYSTONE_FIELDS}
    if extra:
        changes["extra"] = extra
    enabled = common.flag(fields, "enabled")
    if enabled is not None:
        changes["enabled"] = enabled
    for field in ("email", "description"):
        if field in fields:
            changes[field] = common.text(fields, field)
    if "default_project_id" in fields:
        wanted = common.text(fields, "default_project_id")
        project = await common.by_id(common.store(request), "Project", wanted) if wanted else None
        changes["defaultProject"] = project["metadata"]["name"] if project else None
    options = fields.get("options") or {}
    if not isinstance(options, dict):
        raise fail(400, "Invalid input for field 'options': expected an object.")
    ignore = common.flag(options, "ignore_lockout_failure_attempts")
    if ignore is not None:
        changes["ignoreLockoutFailureAttempts"] = ignore
    if "password" in fields:  # null: no password (no password login)
        password = common.text(fields, "password")
        if password == "":
            raise fail(400, "Invalid input for field 'password': it is empty.")
        hashed = await common.identity(request).checks.hash(password) if password else None
        changes["passwordHash"] = hashed
    return changes


def _apply(spec: dict[str, Any], changes: dict[str, Any]) -> None:
    for field, value in changes.items():
        if field == "extra":  # Keystone merges extra attributes; null removes one
            merged = {**(spec.get("extra") or {}), **value}
            spec["extra"] = {k: v for k, v in merged.items() if v is not None}
            if not spec["extra"]:
                del spec["extra"]
        elif value is None:
            spec.pop(field, None)
        else:
            spec[field] = value


async def create(request: web.Request) -> web.Response:
    await common.admin(request, "identity:create_user")
    fields = await common.member(request, "user")
    name = common.name(fields, "User")
    spec: dict[str, Any] = {}
    _apply(spec, await _spec_changes(request, fields))
    s = common.store(request)
    made = await common.create_named(
        s,
        "User",
        name,
        spec,
        "Conflict occurred attempting to store user - Duplicate entry found with name "
        f"{name} at domain ID default.",
    )
    return web.json_response({"user": body(request, made, await _projects_by_name(s))}, status=201)


def _matches(user: Obj, query: Any) -> bool:
    return (
        query.get("name", shown(user)) == shown(user)
        and query.get("domain_id", "default") == "default"
        and (
            "enabled" not in query
            or common.truthy(query["enabled"]) == user["spec"].get("enabled", True)
        )
    )


async def index(request: web.Request) -> web.Response:
    await common.reader(request, "identity:list_users")
    s = common.store(request)
    projects = await _projects_by_name(s)
    found = [u for u in (await s.list("User")).items if _matches(u, request.query)]
    return web.json_response(
        {
            "users": [body(request, u, projects) for u in found],
            "links": common.links(request, "users"),
        }
    )


async def show(request: web.Request) -> web.Response:
    uid = request.match_info["user_id"]
    await common.reader_or_self(request, "identity:get_user", uid)
    s = common.store(request)
    user = await common.by_id(s, "User", uid)
    return web.json_response({"user": body(request, user, await _projects_by_name(s))})


async def update(request: web.Request) -> web.Response:
    await common.admin(request, "identity:update_user")
    s = common.store(request)
    user = await common.by_id(s, "User", request.match_info["user_id"])
    fields = await common.member(request, "user")
    changes = await _spec_changes(request, fields)
    if "name" in fields and (name := common.name(fields, "User")) != shown(user):
        if await keystone_names.find(s, "User", name) is not None:
            raise fail(
                409,
                "Conflict occurred attempting to store user - Duplicate entry found with "
                f"name {name} at domain ID default.",
            )
        changes["displayName"] = keystone_names.display(name, user["metadata"]["name"]).get(
            "displayName"
        )
    changed = await common.change(s, user, lambda spec: _apply(spec, changes))
    if "passwordHash" in changes or changes.get("enabled") is False:
        # its tokens die with its old password or its account, as Keystone's
        await common.identity(request).revoke_user(str(user["metadata"]["uid"]))
    return web.json_response({"user": body(request, changed, await _projects_by_name(s))})


async def delete(request: web.Request) -> web.Response:
    await common.admin(request, "identity:delete_user")
    ident = common.identity(request)
    user = await common.by_id(ident.store, "User", request.match_info["user_id"])
    await common.remove(ident.store, user)
    await ident.revoke_user(str(user["metadata"]["uid"]))
    # its application credentials, access rules and EC2 credentials go with it, as Keystone's
    uid = str(user["metadata"]["uid"])
    for cred in await ident.app_credentials.of_user(uid):
        await ident.app_credentials.delete(cred)
    for rule in await ident.access_rules.of_user(uid):
        await ident.access_rules.delete(uid, rule)
    for ec2 in await ident.ec2_credentials.every():
        if ec2.user == uid:
            await ident.ec2_credentials.delete(ec2)
    return web.Response(status=204)


async def projects(request: web.Request) -> web.Response:
    """The projects a user may scope to (Horizon's login lists them)."""
    uid = request.match_info["user_id"]
    await common.reader_or_self(request, "identity:list_user_projects", uid)
    user = await common.by_id(common.store(request), "User", uid)
    base = base_url(request)
    mine = await common.identity(request).projects_of_user(user)
    ids = project_ids((await common.store(request).list("Project")).items)
    return web.json_response(
        {
            "projects": [project_body(p, base, ids) for p in mine],
            "links": common.links(request, f"users/{uid}/projects"),
        }
    )


async def change_password(request: web.Request) -> web.Response:
    """A user's own password change: the original password is the proof, as Keystone's."""
    uid = request.match_info["user_id"]
    fields = await common.member(request, "user")
    original, password = common.text(fields, "original_password"), common.text(fields, "password")
    if original is None or not password:
        raise fail(
            400, "Invalid input for field 'user': 'password' and 'original_password' are required."
        )
    ident = common.identity(request)
    # checked as a login is: as long for an unknown user, counted towards lockout
    user = await ident.password_user({"id": uid, "password": original})
    if not user["spec"].get("enabled", True):
        raise fail(401, "The request you have made requires authentication.")
    hashed = await ident.checks.hash(password)
    await common.change(ident.store, user, lambda spec: spec.update(passwordHash=hashed))
    await ident.revoke_user(str(user["metadata"]["uid"]))  # its tokens die with the old one
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v3/users", create)
    app.router.add_get("/v3/users", index)
    app.router.add_get("/v3/users/{user_id}", show)
    app.router.add_patch("/v3/users/{user_id}", update)
    app.router.add_delete("/v3/users/{user_id}", delete)
    app.router.add_get("/v3/users/{user_id}/projects", projects)
    app.router.add_post("/v3/users/{user_id}/password", change_password)
