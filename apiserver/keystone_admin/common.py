"""What the Keystone admin API's handlers share: who calls, what they send, and the writes.

Owns: Keystone's default policy as this cloud has it (``admin``: a token
carrying the admin role, on a project or on the whole cloud, manages
everything; ``reader``: an admin, or a system-scoped token with the reader
role, reads everything; ``admin_or_self`` and ``reader_or_self``: the user itself
too), reading a request body
``{"<member>": {...}}``, Keystone's boolean query values, finding Users,
Projects and Roles by Keystone id, and ``create`` / ``change`` / ``remove``:
every write validated by the kind's schema and ``state.admission`` before
the store takes it, a change re-read and tried again when another writer
won.

Must never: write an object its schema or admission refuses, or answer an
error in another shape than Keystone's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from aiohttp import web

from apiserver import keystone_names, request_text
from apiserver.identity import IDENTITY, Identity, KeystoneError, caller, fail, keystone_id
from apiserver.tokens import Token
from apiserver.urls import base_url
from schemas.names import printable
from state.admission import admit, admit_delete
from state.envelope import Obj, Ref
from state.errors import AlreadyExists, Conflict
from state.store import Store
from state.validation import validate

#: how often a change is tried again when another writer changed the object first
_RETRIES = 16


def identity(request: web.Request) -> Identity:
    return request.app[IDENTITY]


def store(request: web.Request) -> Store:
    return request.app[IDENTITY].store


def forbidden(action: str) -> KeystoneError:
    return fail(403, f"You are not authorized to perform the requested action: {action}.")


async def admin(request: web.Request, action: str) -> Token:
    """The caller's token, if it carries the admin role; Keystone's 401 or 403 otherwise."""
    token = await caller(request)
    if "admin" not in token.roles:
        raise forbidden(action)
    return token


def reads_everything(token: Token) -> bool:
    """Whether ``token`` may read every user, project and assignment: an admin's, or a
    system-scoped reader's (Keystone's system reader)."""
    return "admin" in token.roles or (token.system and "reader" in token.roles)


async def reader(request: web.Request, action: str) -> Token:
    """The caller's token, if it may read everything (``reads_everything``); Keystone's 401
    or 403 otherwise."""
    token = await caller(request)
    if not reads_everything(token):
        raise forbidden(action)
    return token


async def admin_or_self(request: web.Request, action: str, user_id: str) -> Token:
    """The caller's token, if it is an admin's or user ``user_id``'s own."""
    token = await caller(request)
    if "admin" not in token.roles and token.user_id != user_id:
        raise forbidden(action)
    return token


async def reader_or_self(request: web.Request, action: str, user_id: str) -> Token:
    """The caller's token, if it may read everything or is user ``user_id``'s own."""
    token = await caller(request)
    if not reads_everything(token) and token.user_id != user_id:
        raise forbidden(action)
    return token


async def json_body(request: web.Request) -> Any:
    """The JSON body; Keystone's 400 when it is not JSON."""
    try:
        return await request_text.decode(await request.read())
    except ValueError:
        raise fail(400, "The request body is not JSON.") from None


async def member(request: web.Request, name: str) -> dict[str, Any]:
    """The JSON body's object ``name`` (``{"project": {...}}``); Keystone's 400 otherwise."""
    body = await json_body(request)
    inner = body.get(name) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        raise fail(400, f"Invalid input for field '{name}': expected an object.")
    return inner


def text(values: dict[str, Any], field: str) -> str | None:
    """``values[field]`` when it is a string (None when absent or null); 400 otherwise."""
    value = values.get(field)
    if value is not None and not isinstance(value, str):
        raise fail(400, f"Invalid input for field '{field}': {value!r} is not of type 'string'.")
    return value


#: the longest Keystone name of each kind (Keystone's schemas)
NAME_LIMITS = {"Project": 64, "User": 255}


def name(values: dict[str, Any], kind: str) -> str:
    """``values["name"]`` if Keystone takes it as a ``kind``'s name; Keystone's 400
    otherwise."""
    value, limit = values.get("name"), NAME_LIMITS[kind]
    if not isinstance(value, str) or not value.strip():
        raise fail(400, f"Invalid input for field 'name': {value!r} is not a valid name.")
    if len(value) > limit:
        raise fail(400, f"Invalid input for field 'name': {value!r} is too long (max {limit}).")
    if value != value.strip() or not printable(value):
        raise fail(
            400,
            f"Invalid input for field 'name': {value!r} has white space at an end or "
            "characters that are not printable.",
        )
    return value


def flag(values: dict[str, Any], field: str) -> bool | None:
    """``values[field]`` when it is a boolean (None when absent); 400 otherwise."""
    value = values.get(field)
    if value is not None and not isinstance(value, bool):
        raise fail(400, f"Invalid input for field '{field}': {value!r} is not of type 'boolean'.")
    return value


def truthy(value: str) -> bool:
    """A query parameter as Keystone reads a boolean: anything but ``0`` and ``false``."""
    return value.lower() not in ("0", "false")


def in_default_domain(domain_id: str | None) -> None:
    """Keystone's 404 for a domain other than ``default``: it is the only one."""
    if domain_id not in (None, "default"):
        raise fail(404, f"Could not find domain: {domain_id}.")


async def by_id(s: Store, kind: str, ident: str) -> Obj:
    """The ``kind`` whose Keystone id is ``ident``; Keystone's 404 otherwise."""
    for obj in (await s.list(kind)).items:
        if keystone_id(obj) == ident:
            return obj
    raise fail(404, f"Could not find {kind.lower()}: {ident}.")


async def create(s: Store, obj: Obj, duplicate: str) -> Obj:
    """Stores ``obj`` checked by its schema and admission; 409 ``duplicate`` if its name is
    taken."""
    checked = validate(obj)
    await admit(s, checked)
    try:
        return await s.create(checked)
    except AlreadyExists:
        raise fail(409, duplicate) from None


async def create_named(s: Store, kind: str, name: str, spec: dict[str, Any], duplicate: str) -> Obj:
    """Stores a new ``kind`` with Keystone name ``name`` (``apiserver.keystone_names``):
    409 ``duplicate`` if a ``kind`` has that name already."""
    if await keystone_names.find(s, kind, name) is not None:
        raise fail(409, duplicate)
    for fresh in (False, True):
        obj_name = keystone_names.object_name(name, kind, fresh=fresh)
        obj = {
            "kind": kind,
            "metadata": {"name": obj_name},
            "spec": {**spec, **keystone_names.display(name, obj_name)},
        }
        checked = validate(obj)
        await admit(s, checked)
        try:
            return await s.create(checked)
        except AlreadyExists:
            if await keystone_names.find(s, kind, name) is not None:
                raise fail(409, duplicate) from None
            # its object name is another's, renamed since: this one gets a fresh one
    raise fail(409, duplicate)


async def change(s: Store, obj: Obj, mutate: Callable[[dict[str, Any]], None]) -> Obj:
    """Writes ``obj`` with its spec as ``mutate`` changes it (in place), checked by its
    schema and admission; read again and changed again while other writers win."""
    r = Ref(obj["kind"], None, obj["metadata"]["name"])
    current = obj
    for _ in range(_RETRIES):
        spec = copy.deepcopy(current.get("spec") or {})
        mutate(spec)
        updated = validate(dict(current, spec=spec))
        await admit(s, updated)
        try:
            return await s.update(updated, current=current) or updated
        except Conflict:
            fresh = await s.get_or_none(r)
            if fresh is None:
                raise fail(404, f"Could not find {r.kind.lower()}: {keystone_id(obj)}.") from None
            current = fresh
    raise Conflict(f"{r} kept changing while it was written; retry")


async def remove(s: Store, obj: Obj) -> None:
    """Deletes ``obj`` (after ``state.admission``'s delete checks)."""
    r = Ref(obj["kind"], None, obj["metadata"]["name"])
    await admit_delete(s, r)
    await s.delete(r)


def url(request: web.Request, path: str) -> str:
    """The full URL of ``/identity/v3/<path>``."""
    return f"{base_url(request)}/identity/v3/{path}"


def links(request: web.Request, path: str) -> dict[str, Any]:
    """A list's ``links``: itself, no pages."""
    return {"self": url(request, path), "next": None, "previous": None}
