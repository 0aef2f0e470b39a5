"""Keystone's application credentials: a user makes, lists, shows and deletes its own.

Owns: ``/v3/users/{id}/application_credentials[/{id}]`` and their bodies
over ``state.app_credentials``. A credential is made from a project-scoped
token of its owner: scoped to that project, with the roles asked for (each
one its owner holds there now, granted before the token or since, as
Keystone checks the assignments) or else every role the token carries; its secret
(given, or made here) is answered once and kept only as a salted hash, made
in the password-check threads; its access rules
(``apiserver.keystone_admin.access_rules``) limit the calls its tokens make.
A token of a restricted credential may not make another (Keystone's 403).

Must never: make a credential for another user, or with a role its owner
does not hold on its project; answer a secret but at its making; show a user's
credentials to anyone but itself or an admin.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

from aiohttp import web

from apiserver.identity import caller, fail, keystone_id
from apiserver.keystone_admin import access_rules, common
from apiserver.keystone_admin import roles as keystone_roles
from state import roles
from state.app_credentials import AppCredential
from state.errors import AlreadyExists
from state.store import Store


def _stamp(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _expiry(value: Any) -> float | None:
    """``expires_at`` as epoch seconds (None: never); 400 for what is no future time."""
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise fail(400, f"Invalid input for field 'expires_at': {value!r} is no time.") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if when <= dt.datetime.now(dt.UTC):
        raise fail(400, "Invalid input for field 'expires_at': the time has passed.")
    return when.timestamp()


async def _body(request: web.Request, s: Store, cred: AppCredential) -> dict[str, Any]:
    projects = {p["metadata"]["name"]: p for p in (await s.list("Project")).items}
    project = projects.get(cred.project)
    uid = request.match_info["user_id"]
    return {
        "id": cred.id,
        "name": cred.name,
        "description": cred.description,
        "user_id": uid,
        "project_id": keystone_id(project) if project is not None else None,
        "roles": [{"id": roles.role_id(r), "name": r, "domain_id": None} for r in cred.roles],
        "expires_at": _stamp(cred.expires_at),
        "unrestricted": cred.unrestricted,
        "access_rules": [access_rules.brief(r) for r in cred.access_rules],
        "links": {"self": common.url(request, f"users/{uid}/application_credentials/{cred.id}")},
    }


async def create(request: web.Request) -> web.Response:
    uid = request.match_info["user_id"]
    token = await caller(request)
    if token.user_id != uid:
        raise common.forbidden("identity:create_application_credential")
    if token.restricted:
        raise fail(
            403,
            "Using method 'application_credential' is not allowed for managing additional "
            "application credentials.",
        )
    if not token.project_id:
        raise fail(400, "An application credential is made with a project-scoped token.")
    fields = await common.member(request, "application_credential")
    name = common.text(fields, "name")
    if not name:
        raise fail(400, "Invalid input for field 'name': an application credential needs a name.")
    ident = common.identity(request)
    user = await common.by_id(ident.store, "User", uid)
    asked = fields.get("roles")
    if asked is None:
        wanted = set(token.roles)
    elif isinstance(asked, list) and all(isinstance(r, dict) for r in asked):
        every = await keystone_roles.every_role(common.store(request))
        wanted = {
            str(r.get("name") or getattr(every.get(str(r.get("id"))), "name", "")) for r in asked
        }
        held = {
            a["role"]
            for a in user["spec"].get("roles") or []
            if a.get("project") in (None, "", token.project)
        }
        missing = sorted(wanted - set(roles.implied(held)))
        if missing:
            raise fail(
                404,
                f"Could not find role assignment: {', '.join(missing)} on project "
                f"{token.project_id} for user {uid}.",
            )
    else:
        raise fail(400, "Invalid input for field 'roles': expected a list of objects.")
    rules, fresh = await access_rules.asked(
        request, str(user["metadata"]["uid"]), fields.get("access_rules")
    )
    secret = common.text(fields, "secret") or secrets.token_urlsafe(64)
    cred = AppCredential(
        id=uuid.uuid4().hex,
        user=str(user["metadata"]["uid"]),
        name=name,
        description=common.text(fields, "description") or "",
        secret_hash=await ident.checks.hash(secret),
        project=token.project,
        roles=tuple(sorted(wanted)),
        expires_at=_expiry(fields.get("expires_at")),
        unrestricted=bool(common.flag(fields, "unrestricted")),
        access_rules=rules,
    )
    try:
        await ident.app_credentials.create(cred)
    except AlreadyExists:
        raise fail(
            409,
            "Conflict occurred attempting to store application_credential - "
            f"Duplicate entry found with name {name}.",
        ) from None
    for rule in fresh:  # once the credential is: a refused one leaves none behind
        await ident.access_rules.put(cred.user, rule)
    body = await _body(request, ident.store, cred)
    return web.json_response({"application_credential": {**body, "secret": secret}}, status=201)


async def _mine(request: web.Request, action: str) -> list[AppCredential]:
    uid = request.match_info["user_id"]
    await common.admin_or_self(request, action, uid)
    ident = common.identity(request)
    user = await common.by_id(ident.store, "User", uid)
    return await ident.app_credentials.of_user(str(user["metadata"]["uid"]))


async def _one(request: web.Request, action: str) -> AppCredential:
    wanted = request.match_info["cred_id"]
    for cred in await _mine(request, action):
        if cred.id == wanted:
            return cred
    raise fail(404, f"Could not find Application Credential: {wanted}.")


async def index(request: web.Request) -> web.Response:
    name = request.query.get("name")
    shown = [
        c
        for c in await _mine(request, "identity:list_application_credentials")
        if name in (None, c.name)
    ]
    s = common.store(request)
    uid = request.match_info["user_id"]
    return web.json_response(
        {
            "application_credentials": [await _body(request, s, c) for c in shown],
            "links": common.links(request, f"users/{uid}/application_credentials"),
        }
    )


async def show(request: web.Request) -> web.Response:
    cred = await _one(request, "identity:get_application_credential")
    body = await _body(request, common.store(request), cred)
    return web.json_response({"application_credential": body})


async def delete(request: web.Request) -> web.Response:
    cred = await _one(request, "identity:delete_application_credential")
    await common.identity(request).app_credentials.delete(cred)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    base = "/v3/users/{user_id}/application_credentials"
    app.router.add_post(base, create)
    app.router.add_get(base, index)
    app.router.add_get(base + "/{cred_id}", show)
    app.router.add_delete(base + "/{cred_id}", delete)
