"""What every handler of the Neutron subset shares: the caller, faults, projects, lists.

Owns: Neutron's error body (``{"NeutronError": {"type", "message",
"detail"}}``), who may read and write what (admins: everything; members:
their project's and shared networks; readers: read only), Keystone ids of
projects both ways, reading a request's body under its resource key, and
list answers filtered by query parameters and ``fields`` as Neutron's.

Must never: let a caller who is not an admin see another project's objects
(shared and external networks excepted).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from apiserver.identity import keystone_id_of
from apiserver.request_text import decode
from apiserver.tokens import Token
from state.envelope import Obj
from state.store import Store

STORE = web.AppKey("network_store", Store)
CALLER = "network_caller"


class NeutronFault(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def render(fault: NeutronFault) -> web.Response:
    body = {"NeutronError": {"type": fault.kind, "message": fault.message, "detail": ""}}
    return web.json_response(body, status=fault.status)


def store_of(request: web.Request) -> Store:
    return request.app[STORE]


def caller(request: web.Request) -> Token:
    token: Token = request[CALLER]
    return token


def is_admin(request: web.Request) -> bool:
    return "admin" in caller(request).roles


def may_write(request: web.Request) -> None:
    if not {"admin", "member"} & set(caller(request).roles):
        raise NeutronFault(
            403, "PolicyNotAuthorized", "The request you have made requires a member role."
        )


def own_project(request: web.Request) -> str:
    project = caller(request).project
    if not project:
        raise NeutronFault(400, "BadRequest", "The token is not scoped to a project.")
    return project


def sees(request: web.Request, obj: Obj, shared: bool = False) -> bool:
    return is_admin(request) or shared or obj["metadata"].get("project") == caller(request).project


class Projects:
    """Keystone ids of projects and back, read once per request."""

    def __init__(self, projects: list[Obj]) -> None:
        self._ids = {p["metadata"]["name"]: keystone_id_of(p["metadata"]["uid"]) for p in projects}
        self._names = {v: k for k, v in self._ids.items()}

    @classmethod
    async def read(cls, request: web.Request) -> Projects:
        return cls((await store_of(request).list("Project")).items)

    def id_of(self, name: str | None) -> str:
        return self._ids.get(name or "", name or "")

    def name_of(self, ident: str) -> str | None:
        return self._names.get(ident.replace("-", ""))


async def acting_project(request: web.Request, body: dict[str, Any]) -> str:
    """The project a create is for: the caller's, or (admins only) the one the body names."""
    named = body.get("project_id") or body.get("tenant_id")
    if not named:
        return own_project(request)
    project = (await Projects.read(request)).name_of(str(named))
    if project is None:
        raise NeutronFault(404, "ProjectNotFound", f"Project {named} could not be found.")
    if project != caller(request).project and not is_admin(request):
        raise NeutronFault(403, "PolicyNotAuthorized", "Only admins act for other projects.")
    return project


async def body_of(request: web.Request, key: str) -> dict[str, Any]:
    try:
        data = await decode(await request.read())
    except ValueError:
        raise NeutronFault(400, "BadRequest", "The request body is not JSON.") from None
    inner = data.get(key) if isinstance(data, dict) else None
    if not isinstance(inner, dict):
        raise NeutronFault(400, "BadRequest", f"Resource body required: {key!r}.")
    return inner


def stamp(value: str | None) -> str | None:
    """Neutron's times: seconds, with Z."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%SZ")


def standard(obj: Obj, projects: Projects) -> dict[str, Any]:
    """Fields every Neutron resource has."""
    meta = obj["metadata"]
    pid = projects.id_of(meta.get("project"))
    return {
        "tenant_id": pid,
        "project_id": pid,
        "created_at": stamp(meta.get("creationTimestamp")),
        "updated_at": stamp(meta.get("creationTimestamp")),
        "revision_number": meta.get("generation", 1),
        "tags": [],
    }


def _matches(item: dict[str, Any], key: str, wanted: list[str]) -> bool:
    if key not in item:
        return True  # Neutron ignores filters on fields a resource does not have
    value = item[key]
    shown = str(value).lower() if isinstance(value, bool) else ("" if value is None else str(value))
    return shown in wanted


def listing(request: web.Request, collection: str, items: list[dict[str, Any]]) -> web.Response:
    """The list answer: items filtered by the query's fields, trimmed to ``fields``."""
    query = request.query
    filters = {
        k: query.getall(k)
        for k in query
        if k not in ("fields", "limit", "marker", "sort_key", "sort_dir")
    }
    kept = [i for i in items if all(_matches(i, k, v) for k, v in filters.items())]
    fields = query.getall("fields", [])
    if fields:
        kept = [{k: v for k, v in i.items() if k in fields} for i in kept]
    return web.json_response({collection: kept})


def one(key: str, item: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response({key: item}, status=status)
