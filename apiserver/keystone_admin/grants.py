"""Keystone's role assignments over users' ``spec.roles``: grant, revoke, check, list.

Owns: ``/v3/projects/{p}/users/{u}/roles[/{r}]`` and
``/v3/system/users/{u}/roles[/{r}]`` (a role on the whole cloud: an
assignment without a project), and ``/v3/role_assignments`` with its
filters ``user.id``, ``role.id``, ``scope.project.id``, ``scope.system``,
``effective`` (the roles assignments imply, as Keystone's implied roles:
admin implies member, member implies reader) and ``include_names``. Groups
and domain assignments do not exist here: filtering by them finds nothing.
A grant or a revocation is a change of the User (``apiserver.token_users``
watches them): a token carrying a revoked role dies at once.

Must never: let a caller without the admin role grant or revoke assignments,
or one that is neither an admin nor a system reader list them; grant a role, or on a project, that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from apiserver.identity import DOMAIN, fail, keystone_id
from apiserver.keystone_admin import common, roles
from apiserver.keystone_names import shown
from state import roles as builtin_roles
from state.envelope import Obj


@dataclass(frozen=True)
class Target:
    """One assignment a URL names: a user, a role, and a project (None: the whole cloud)."""

    user: Obj
    role: roles.Role
    project: Obj | None

    @property
    def assignment(self) -> dict[str, str]:
        if self.project is None:
            return {"role": self.role.name}
        return {"role": self.role.name, "project": self.project["metadata"]["name"]}

    def held(self) -> bool:
        return self.assignment in (self.user["spec"].get("roles") or [])


async def _project(request: web.Request) -> Obj | None:
    pid = request.match_info.get("project_id")
    return None if pid is None else await common.by_id(common.store(request), "Project", pid)


async def _target(request: web.Request, action: str) -> Target:
    await common.admin(request, action)
    s = common.store(request)
    project = await _project(request)
    user = await common.by_id(s, "User", request.match_info["user_id"])
    return Target(user, await roles.by_id(s, request.match_info["role_id"]), project)


async def grant(request: web.Request) -> web.Response:
    target = await _target(request, "identity:create_grant")
    wanted = target.assignment

    def add(spec: dict[str, Any]) -> None:
        held = spec.get("roles") or []
        spec["roles"] = held if wanted in held else [*held, wanted]

    if not target.held():
        await common.change(common.store(request), target.user, add)
    return web.Response(status=204)


async def revoke(request: web.Request) -> web.Response:
    target = await _target(request, "identity:revoke_grant")
    if not target.held():
        raise fail(
            404,
            f"Could not find role assignment: role {target.role.id} of user "
            f"{keystone_id(target.user)}.",
        )
    gone = target.assignment
    await common.change(
        common.store(request),
        target.user,
        lambda spec: spec.update(roles=[a for a in spec.get("roles") or [] if a != gone]),
    )
    # the tokens carrying it die at once here (a role on the whole cloud: every token)
    await common.identity(request).revoke_user(
        str(target.user["metadata"]["uid"]), gone.get("project", "")
    )
    return web.Response(status=204)


async def check(request: web.Request) -> web.Response:
    target = await _target(request, "identity:check_grant")
    if not target.held():
        raise fail(
            404,
            f"Could not find role assignment: role {target.role.id} of user "
            f"{keystone_id(target.user)}.",
        )
    return web.Response(status=204)


async def list_grants(request: web.Request) -> web.Response:
    """The roles a user holds directly on a project (or on the whole cloud)."""
    await common.reader(request, "identity:list_grants")
    s = common.store(request)
    project = await _project(request)
    user = await common.by_id(s, "User", request.match_info["user_id"])
    on = project["metadata"]["name"] if project is not None else None
    names = {a["role"] for a in user["spec"].get("roles") or [] if a.get("project") == on}
    held = [r for r in (await roles.every_role(s)).values() if r.name in names]
    return web.json_response(
        {
            "roles": [r.body(request) for r in held],
            "links": common.links(request, request.path.split("/v3/", 1)[1]),
        }
    )


@dataclass(frozen=True)
class _Row:
    user: Obj
    role: roles.Role
    project: Obj | None
    #: the role whose assignment implies this one (``effective``), or None
    prior: roles.Role | None = None


def _row_body(request: web.Request, row: _Row, names: bool) -> dict[str, Any]:
    uid = keystone_id(row.user)
    given = row.prior or row.role
    user: dict[str, Any] = {"id": uid}
    role: dict[str, Any] = {"id": row.role.id}
    if row.project is None:
        scope: dict[str, Any] = {"system": {"all": True}}
        assignment = f"system/users/{uid}/roles/{given.id}"
    else:
        pid = keystone_id(row.project)
        scope = {"project": {"id": pid}}
        assignment = f"projects/{pid}/users/{uid}/roles/{given.id}"
        if names:
            scope["project"].update(name=shown(row.project), domain=DOMAIN)
    if names:
        user.update(name=shown(row.user), domain=DOMAIN)
        role["name"] = row.role.name
    links = {"assignment": common.url(request, assignment)}
    if row.prior is not None:
        links["prior_role"] = common.url(request, f"roles/{row.prior.id}")
    return {"role": role, "user": user, "scope": scope, "links": links}


async def role_assignments(request: web.Request) -> web.Response:
    await common.reader(request, "identity:list_role_assignments")
    q = request.query
    s = common.store(request)
    effective = "effective" in q and common.truthy(q["effective"])
    every = await roles.every_role(s)
    by_name = {r.name: r for r in every.values()}
    projects = {p["metadata"]["name"]: p for p in (await s.list("Project")).items}
    rows: list[_Row] = []
    if "group.id" in q or "scope.domain.id" in q:
        users: list[Obj] = []  # no groups, no assignments on domains
    else:
        users = (await s.list("User")).items
    for user in users:
        for a in user["spec"].get("roles") or []:
            role, on = by_name.get(a["role"]), a.get("project")
            if role is None or (on and on not in projects):
                continue  # a role or project deleted behind the API's back grants nothing
            project = projects[on] if on else None
            rows.append(_Row(user, role, project))
            if effective:
                rows += [
                    _Row(user, by_name[r], project, role)
                    for r in builtin_roles.implied({role.name})
                    if r != role.name
                ]
    found = [r for r in rows if _matches(r, q)]
    names = "include_names" in q and common.truthy(q["include_names"])
    return web.json_response(
        {
            "role_assignments": [_row_body(request, r, names) for r in _unique(found)],
            "links": common.links(request, "role_assignments"),
        }
    )


def _unique(rows: list[_Row]) -> list[_Row]:
    """Each (user, role, scope) once: a role granted and also implied shows as granted."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for row in sorted(rows, key=lambda r: r.prior is not None):
        key = (
            keystone_id(row.user),
            row.role.id,
            keystone_id(row.project) if row.project is not None else "",
        )
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _matches(row: _Row, q: Any) -> bool:
    pid = keystone_id(row.project) if row.project is not None else None
    return (
        q.get("user.id", keystone_id(row.user)) == keystone_id(row.user)
        and q.get("role.id", row.role.id) == row.role.id
        and ("scope.project.id" not in q or q["scope.project.id"] == pid)
        and ("scope.system" not in q or row.project is None)
    )


def add_routes(app: web.Application) -> None:
    for prefix in ("/v3/projects/{project_id}/users/{user_id}", "/v3/system/users/{user_id}"):
        app.router.add_get(f"{prefix}/roles", list_grants)
        app.router.add_put(f"{prefix}/roles/{{role_id}}", grant)
        app.router.add_delete(f"{prefix}/roles/{{role_id}}", revoke)
        app.router.add_get(f"{prefix}/roles/{{role_id}}", check)  # also answers HEAD
    app.router.add_get("/v3/role_assignments", role_assignments)
