"""Keystone's roles: the built-in ones and custom ``Role`` objects; create, delete, list, show.

Owns: ``/v3/roles`` and ``/v3/roles/{id}`` and their bodies, and the implied
roles (``/v3/role_inferences``, ``/v3/roles/{id}/implies[/{id}]``: read
only, Keystone's defaults: admin implies member, member implies reader). The built-in
roles (``state.roles``: admin, member, reader, service) always exist and are
Keystone's immutable roles (``options.immutable``): deleting one is
Keystone's 403. A custom role is a ``Role`` object; every role's id derives
from its name. Deleting a custom role first takes it from every user who
holds it (Keystone deletes a role's assignments), so tokens carrying it die
at once.

Must never: let a caller without the admin role make or delete roles, or one
that is neither an admin nor a system reader see them; delete a built-in
role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from apiserver.identity import fail
from apiserver.keystone_admin import common
from state import roles
from state.envelope import Ref
from state.store import Store

_BUILTIN_DESCRIPTIONS = {
    "admin": "Manages everything (implies member).",
    "member": "Reads and writes a project's objects (implies reader).",
    "reader": "Reads a project's objects.",
    "service": "desired's daemons (hostd reads every image's data with it).",
}


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    builtin: bool

    @property
    def id(self) -> str:
        return roles.role_id(self.name)

    def body(self, request: web.Request) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "domain_id": None,
            "description": self.description,
            "options": {"immutable": True} if self.builtin else {},
            "links": {"self": common.url(request, f"roles/{self.id}")},
        }


async def every_role(s: Store) -> dict[str, Role]:
    """Every role there is, by Keystone id: the built-in ones, then the Role objects."""
    found = [Role(n, _BUILTIN_DESCRIPTIONS[n], True) for n in roles.BUILTIN]
    found += [
        Role(r["metadata"]["name"], r["spec"].get("description", ""), False)
        for r in (await s.list("Role")).items
    ]
    return {r.id: r for r in found}


async def by_id(s: Store, ident: str) -> Role:
    role = (await every_role(s)).get(ident)
    if role is None:
        raise fail(404, f"Could not find role: {ident}.")
    return role


async def index(request: web.Request) -> web.Response:
    await common.reader(request, "identity:list_roles")
    name = request.query.get("name")
    shown = [
        r for r in (await every_role(common.store(request))).values() if name in (None, r.name)
    ]
    return web.json_response(
        {"roles": [r.body(request) for r in shown], "links": common.links(request, "roles")}
    )


async def show(request: web.Request) -> web.Response:
    await common.reader(request, "identity:get_role")
    role = await by_id(common.store(request), request.match_info["role_id"])
    return web.json_response({"role": role.body(request)})


async def create(request: web.Request) -> web.Response:
    await common.admin(request, "identity:create_role")
    fields = await common.member(request, "role")
    name = common.text(fields, "name")
    if not name:
        raise fail(400, "Invalid input for field 'name': a role needs a name.")
    if common.text(fields, "domain_id") is not None:
        raise fail(400, "Domain-specific roles are not supported.")
    duplicate = (
        f"Conflict occurred attempting to store role - Duplicate entry found with name {name}."
    )
    if name in roles.BUILTIN:
        raise fail(409, duplicate)
    description = common.text(fields, "description") or ""
    await common.create(
        common.store(request),
        {"kind": "Role", "metadata": {"name": name}, "spec": {"description": description}},
        duplicate,
    )
    return web.json_response({"role": Role(name, description, False).body(request)}, status=201)


async def delete(request: web.Request) -> web.Response:
    await common.admin(request, "identity:delete_role")
    s = common.store(request)
    role = await by_id(s, request.match_info["role_id"])
    if role.builtin:
        raise fail(403, f"Unable to delete role {role.id}: it is immutable (built in).")

    def drop(spec: dict[str, Any]) -> None:
        spec["roles"] = [a for a in spec.get("roles") or [] if a.get("role") != role.name]

    for user in (await s.list("User")).items:
        if any(a.get("role") == role.name for a in user["spec"].get("roles") or []):
            await common.change(s, user, drop)
            await common.identity(request).revoke_user(str(user["metadata"]["uid"]))
    obj = await s.get_or_none(Ref("Role", None, role.name))
    if obj is not None:
        await common.remove(s, obj)
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    """A custom role's description (a built-in one is immutable, a name cannot change)."""
    await common.admin(request, "identity:update_role")
    s = common.store(request)
    role = await by_id(s, request.match_info["role_id"])
    fields = await common.member(request, "role")
    if role.builtin:
        raise fail(403, f"Unable to update role {role.id}: it is immutable (built in).")
    if common.text(fields, "name") not in (None, role.name):
        raise fail(400, "A role's name cannot change here (its id is derived from it).")
    if "description" not in fields:
        return web.json_response({"role": role.body(request)})
    description = common.text(fields, "description") or ""
    obj = await s.get_or_none(Ref("Role", None, role.name))
    if obj is None:
        raise fail(404, f"Could not find role: {role.id}.")
    await common.change(s, obj, lambda spec: spec.update(description=description))
    return web.json_response({"role": Role(role.name, description, False).body(request)})


def _brief(request: web.Request, role: Role) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "links": {"self": common.url(request, f"roles/{role.id}")},
    }


async def _inferences(request: web.Request) -> list[tuple[Role, list[Role]]]:
    """Each role that implies others, with the roles it implies directly."""
    await common.reader(request, "identity:list_role_inference_rules")
    every = {r.name: r for r in (await every_role(common.store(request))).values()}
    return [(every[p], [every[i] for i in implies]) for p, implies in roles.IMPLIES.items()]


async def inferences(request: web.Request) -> web.Response:
    """``GET /v3/role_inferences``: Keystone's implied roles (fixed here)."""
    rules = await _inferences(request)
    return web.json_response(
        {
            "role_inferences": [
                {"prior_role": _brief(request, p), "implies": [_brief(request, i) for i in implies]}
                for p, implies in rules
            ],
            "links": common.links(request, "role_inferences"),
        }
    )


async def implies(request: web.Request) -> web.Response:
    """``GET /v3/roles/{prior}/implies``: what one role implies directly."""
    prior = await by_id(common.store(request), request.match_info["role_id"])
    found = dict((p.id, i) for p, i in await _inferences(request)).get(prior.id, [])
    return web.json_response(
        {
            "role_inference": {
                "prior_role": _brief(request, prior),
                "implies": [_brief(request, i) for i in found],
            }
        }
    )


async def implication(request: web.Request) -> web.Response:
    """``GET``/``HEAD /v3/roles/{prior}/implies/{implied}``: one implication, or 404."""
    rules = await _inferences(request)
    prior, wanted = request.match_info["role_id"], request.match_info["implied_id"]
    for p, implied in rules:
        for i in implied:
            if (p.id, i.id) == (prior, wanted):
                if request.method == "HEAD":
                    return web.Response(status=204)
                body = {"prior_role": _brief(request, p), "implies": _brief(request, i)}
                return web.json_response({"role_inference": body})
    raise fail(404, f"Could not find implied role: {prior} implies {wanted}.")


def add_routes(app: web.Application) -> None:
    app.router.add_patch("/v3/roles/{role_id}", update)
    app.router.add_get("/v3/role_inferences", inferences)
    app.router.add_get("/v3/roles/{role_id}/implies", implies)
    app.router.add_get("/v3/roles/{role_id}/implies/{implied_id}", implication)
    app.router.add_get("/v3/roles", index)
    app.router.add_post("/v3/roles", create)
    app.router.add_get("/v3/roles/{role_id}", show)
    app.router.add_delete("/v3/roles/{role_id}", delete)
