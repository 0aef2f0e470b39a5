"""Keystone's access rules: those an application credential is made with, and a user's own
list of them.

Owns: reading ``access_rules`` of a new application credential (each a
``{"service", "method", "path"}`` to allow, or ``{"id"}`` of one of the
user's rules; a rule the user has already is taken again, not made twice),
their bodies, and ``/v3/users/{id}/access_rules[/{id}]``: list (filters
``service``, ``method``, ``path``), show, delete (403 while a credential
uses the rule, as Keystone's). Rules are ``state.access_rules`` records; the
calls they allow are kept at the door (``apiserver.access_rule_guard``).

Must never: show or delete a user's rules to anyone but itself or an admin (or
a system reader, for showing); delete a rule a credential uses.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from apiserver.identity import fail
from apiserver.keystone_admin import common
from state.access_rules import METHODS, AccessRule
from state.envelope import Obj

#: what a rule's path may be (Keystone's schema)
_PATH = re.compile(r"^/.{0,224}$", re.DOTALL)
#: what a rule's service (and id) may be
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def brief(rule: AccessRule) -> dict[str, str]:
    """A rule as an application credential shows it."""
    return {"id": rule.id, "service": rule.service, "method": rule.method, "path": rule.path}


async def asked(
    request: web.Request, user_uid: str, value: Any
) -> tuple[tuple[AccessRule, ...], list[AccessRule]]:
    """The rules a new credential of user ``user_uid`` asks for (``value``) and which of them
    are new (to store once the credential is); Keystone's 400 or 404 otherwise."""
    if value is None:
        return (), []
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise fail(400, "Invalid input for field 'access_rules': expected a list of objects.")
    held = await common.identity(request).access_rules.of_user(user_uid)
    by_id = {r.id: r for r in held}
    by_what = {r.what: r for r in held}
    chosen: list[AccessRule] = []
    fresh: list[AccessRule] = []
    for i, r in enumerate(value):
        if set(r) - {"id", "service", "method", "path"}:
            raise fail(400, f"Invalid input for field 'access_rules[{i}]': unknown fields.")
        if set(r) == {"id"}:
            found = by_id.get(str(r["id"]))
            if found is None:
                raise fail(404, f"Could not find access rule: {r['id']}.")
            chosen.append(found)
            continue
        service, method, path = r.get("service"), r.get("method"), r.get("path")
        if not (isinstance(service, str) and _ID.match(service)):
            raise fail(400, f"Invalid input for field 'access_rules[{i}].service'.")
        if method not in METHODS:
            raise fail(400, f"Invalid input for field 'access_rules[{i}].method'.")
        if not (isinstance(path, str) and _PATH.match(path)):
            raise fail(400, f"Invalid input for field 'access_rules[{i}].path'.")
        what = (service, str(method), path)
        rule = by_what.get(what)
        if rule is None:
            rule = AccessRule(uuid.uuid4().hex, *what)
            by_what[what] = rule
            fresh.append(rule)
        chosen.append(rule)
    return tuple(dict.fromkeys(chosen)), fresh


async def _user(request: web.Request, action: str, *, read: bool) -> Obj:
    uid = request.match_info["user_id"]
    if read:
        await common.reader_or_self(request, action, uid)
    else:
        await common.admin_or_self(request, action, uid)
    return await common.by_id(common.store(request), "User", uid)


def _body(request: web.Request, user_id: str, rule: AccessRule) -> dict[str, Any]:
    link = common.url(request, f"users/{user_id}/access_rules/{rule.id}")
    return {**brief(rule), "links": {"self": link}}


async def index(request: web.Request) -> web.Response:
    user = await _user(request, "identity:list_access_rules", read=True)
    q = request.query
    found = [
        r
        for r in await common.identity(request).access_rules.of_user(str(user["metadata"]["uid"]))
        if all(q.get(f, getattr(r, f)) == getattr(r, f) for f in ("service", "method", "path"))
    ]
    uid = request.match_info["user_id"]
    return web.json_response(
        {
            "access_rules": [_body(request, uid, r) for r in found],
            "links": common.links(request, f"users/{uid}/access_rules"),
        }
    )


async def _one(request: web.Request, user: Obj) -> AccessRule:
    wanted = request.match_info["rule_id"]
    for rule in await common.identity(request).access_rules.of_user(str(user["metadata"]["uid"])):
        if rule.id == wanted:
            return rule
    raise fail(404, f"Could not find access rule: {wanted}.")


async def show(request: web.Request) -> web.Response:
    user = await _user(request, "identity:get_access_rule", read=True)
    rule = await _one(request, user)
    return web.json_response({"access_rule": _body(request, request.match_info["user_id"], rule)})


async def delete(request: web.Request) -> web.Response:
    user = await _user(request, "identity:delete_access_rule", read=False)
    rule = await _one(request, user)
    ident = common.identity(request)
    uid = str(user["metadata"]["uid"])
    if any(rule in c.access_rules for c in await ident.app_credentials.of_user(uid)):
        raise fail(
            403,
            f"Cannot delete access rule {rule.id}: an application credential uses it.",
        )
    await ident.access_rules.delete(uid, rule)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    base = "/v3/users/{user_id}/access_rules"
    app.router.add_get(base, index)
    app.router.add_get(base + "/{rule_id}", show)
    app.router.add_delete(base + "/{rule_id}", delete)
