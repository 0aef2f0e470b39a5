"""Keystone's EC2 credentials, both ways Keystone serves them: ``/v3/credentials`` of type
``ec2`` and ``/v3/users/{id}/credentials/OS-EC2``.

Owns: those routes and their bodies over ``state.ec2_credentials``: a user
(or an admin for it) makes one for a project (an access key and a secret,
given in the blob or made here), lists, shows, changes (a new blob: its id,
type, user and project stay, as Keystone's) and deletes them. Other
credential types (Keystone's ``totp``, ``cert`` and free ones) are refused
(400).

Must never: show, change or delete a user's credentials to anyone but itself
or an admin; make one for a project or user that does not exist.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

from aiohttp import web

from apiserver import request_text
from apiserver.identity import caller, fail, keystone_id, keystone_id_of
from apiserver.keystone_admin import common
from apiserver.tokens import Token
from state.ec2_credentials import Ec2Credential
from state.errors import AlreadyExists
from state.store import Store


async def _project_ids(s: Store) -> dict[str, str]:
    return {p["metadata"]["name"]: keystone_id(p) for p in (await s.list("Project")).items}


def _allowed(token: Token, cred: Ec2Credential) -> bool:
    return "admin" in token.roles or token.user_id == keystone_id_of(cred.user)


async def _make(
    request: web.Request, user_id: str, project_id: str, access: str, secret: str
) -> Ec2Credential:
    s = common.store(request)
    user = await common.by_id(s, "User", user_id)
    project = await common.by_id(s, "Project", project_id)
    cred = Ec2Credential(access, secret, str(user["metadata"]["uid"]), project["metadata"]["name"])
    try:
        await common.identity(request).ec2_credentials.create(cred)
    except AlreadyExists:
        raise fail(
            409, "Conflict occurred attempting to store credential - Duplicate entry."
        ) from None
    return cred


# --- /v3/credentials ---------------------------------------------------------------


def _credential_body(
    request: web.Request, cred: Ec2Credential, projects: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": cred.id,
        "type": "ec2",
        "blob": json.dumps({"access": cred.access, "secret": cred.secret}),
        "user_id": keystone_id_of(cred.user),
        "project_id": projects.get(cred.project),
        "links": {"self": common.url(request, f"credentials/{cred.id}")},
    }


def _blob(fields: dict[str, Any]) -> tuple[str, str]:
    """The access key and secret of an ec2 credential's ``blob``; Keystone's 400 otherwise."""
    try:
        blob = json.loads(common.text(fields, "blob") or "")
        access, secret = blob["access"], blob["secret"]
    except (ValueError, TypeError, KeyError):
        raise fail(
            400, "Invalid input for field 'blob': expected JSON with 'access' and 'secret'."
        ) from None
    if not (isinstance(access, str) and access and isinstance(secret, str) and secret):
        raise fail(400, "Invalid input for field 'blob': 'access' and 'secret' must be text.")
    return access, secret


async def create(request: web.Request) -> web.Response:
    token = await caller(request)
    fields = await common.member(request, "credential")
    user_id = common.text(fields, "user_id") or ""
    if "admin" not in token.roles and user_id != token.user_id:
        raise common.forbidden("identity:create_credential")
    if fields.get("type") != "ec2":
        raise fail(400, "Invalid input for field 'type': only 'ec2' credentials are kept here.")
    project_id = common.text(fields, "project_id")
    if not project_id:
        raise fail(400, "Invalid input for field 'project_id': an ec2 credential needs one.")
    access, secret = _blob(fields)
    cred = await _make(request, user_id, project_id, access, secret)
    projects = await _project_ids(common.store(request))
    return web.json_response({"credential": _credential_body(request, cred, projects)}, status=201)


async def index(request: web.Request) -> web.Response:
    token = await caller(request)
    q = request.query
    shown = [
        c
        for c in await common.identity(request).ec2_credentials.every()
        if _allowed(token, c)
        and q.get("user_id", keystone_id_of(c.user)) == keystone_id_of(c.user)
        and q.get("type", "ec2") == "ec2"
    ]
    projects = await _project_ids(common.store(request))
    return web.json_response(
        {
            "credentials": [_credential_body(request, c, projects) for c in shown],
            "links": common.links(request, "credentials"),
        }
    )


async def _by_credential_id(request: web.Request, action: str) -> Ec2Credential:
    token = await caller(request)
    wanted = request.match_info["credential_id"]
    for cred in await common.identity(request).ec2_credentials.every():
        if cred.id == wanted:
            if not _allowed(token, cred):
                raise common.forbidden(action)
            return cred
    raise fail(404, f"Could not find credential: {wanted}.")


async def show(request: web.Request) -> web.Response:
    cred = await _by_credential_id(request, "identity:get_credential")
    projects = await _project_ids(common.store(request))
    return web.json_response({"credential": _credential_body(request, cred, projects)})


async def update(request: web.Request) -> web.Response:
    """A new blob (access key and secret) for a credential; its id, type, user and project
    stay, as Keystone's."""
    cred = await _by_credential_id(request, "identity:update_credential")
    fields = await common.member(request, "credential")
    projects = await _project_ids(common.store(request))
    kept = {
        "type": "ec2",
        "user_id": keystone_id_of(cred.user),
        "project_id": projects.get(cred.project),
    }
    for field, value in kept.items():
        if field in fields and fields[field] != value:
            raise fail(400, f"Invalid input for field '{field}': it cannot change.")
    changed = cred
    if "blob" in fields:
        access, secret = _blob(fields)
        changed = dataclasses.replace(cred, access=access, secret=secret, made_as=cred.id)
        try:
            await common.identity(request).ec2_credentials.replace(cred, changed)
        except AlreadyExists:
            raise fail(
                409, "Conflict occurred attempting to store credential - Duplicate entry."
            ) from None
    return web.json_response({"credential": _credential_body(request, changed, projects)})


async def delete(request: web.Request) -> web.Response:
    cred = await _by_credential_id(request, "identity:delete_credential")
    await common.identity(request).ec2_credentials.delete(cred)
    return web.Response(status=204)


# --- /v3/users/{id}/credentials/OS-EC2 --------------------------------------------


def _ec2_body(
    request: web.Request, cred: Ec2Credential, projects: dict[str, str]
) -> dict[str, Any]:
    uid = keystone_id_of(cred.user)
    return {
        "user_id": uid,
        "tenant_id": projects.get(cred.project),
        "access": cred.access,
        "secret": cred.secret,
        "trust_id": None,
        "links": {"self": common.url(request, f"users/{uid}/credentials/OS-EC2/{cred.access}")},
    }


async def ec2_create(request: web.Request) -> web.Response:
    uid = request.match_info["user_id"]
    await common.admin_or_self(request, "identity:ec2_create_credential", uid)
    try:
        body = await request_text.decode(await request.read())
    except ValueError:
        raise fail(400, "The request body is not JSON.") from None
    project_id = body.get("tenant_id") if isinstance(body, dict) else None
    if not isinstance(project_id, str) or not project_id:
        raise fail(400, "Invalid input for field 'tenant_id': an EC2 credential needs a project.")
    cred = await _make(request, uid, project_id, uuid.uuid4().hex, uuid.uuid4().hex)
    projects = await _project_ids(common.store(request))
    return web.json_response({"credential": _ec2_body(request, cred, projects)}, status=201)


async def _users(request: web.Request, action: str) -> list[Ec2Credential]:
    uid = request.match_info["user_id"]
    await common.admin_or_self(request, action, uid)
    every = await common.identity(request).ec2_credentials.every()
    return [c for c in every if keystone_id_of(c.user) == uid]


async def ec2_index(request: web.Request) -> web.Response:
    mine = await _users(request, "identity:ec2_list_credentials")
    projects = await _project_ids(common.store(request))
    uid = request.match_info["user_id"]
    return web.json_response(
        {
            "credentials": [_ec2_body(request, c, projects) for c in mine],
            "links": common.links(request, f"users/{uid}/credentials/OS-EC2"),
        }
    )


async def _by_access(request: web.Request, action: str) -> Ec2Credential:
    wanted = request.match_info["access"]
    for cred in await _users(request, action):
        if cred.access == wanted:
            return cred
    raise fail(404, f"Could not find credential: {wanted}.")


async def ec2_show(request: web.Request) -> web.Response:
    cred = await _by_access(request, "identity:ec2_get_credential")
    projects = await _project_ids(common.store(request))
    return web.json_response({"credential": _ec2_body(request, cred, projects)})


async def ec2_delete(request: web.Request) -> web.Response:
    cred = await _by_access(request, "identity:ec2_delete_credential")
    await common.identity(request).ec2_credentials.delete(cred)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v3/credentials", create)
    app.router.add_get("/v3/credentials", index)
    app.router.add_get("/v3/credentials/{credential_id}", show)
    app.router.add_patch("/v3/credentials/{credential_id}", update)
    app.router.add_delete("/v3/credentials/{credential_id}", delete)
    ec2 = "/v3/users/{user_id}/credentials/OS-EC2"
    app.router.add_post(ec2, ec2_create)
    app.router.add_get(ec2, ec2_index)
    app.router.add_get(ec2 + "/{access}", ec2_show)
    app.router.add_delete(ec2 + "/{access}", ec2_delete)
