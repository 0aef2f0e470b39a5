"""Compute API instance actions: ``/servers/{id}/os-instance-actions[/{request_id}]``.

Owns: Nova's views of the action log the conductor keeps in SQL (newest
first; the events of one action for admins; from 2.21 of deleted servers
too), read after SQL has caught up with the server as the request found it
in etcd (a client sees the action of the change it just made).

Must never: show another project's actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, allowed
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.server_lists import refs_for
from apiserver.compute.servers import find
from apiserver.identity import keystone_id_of
from state.envelope import USER_ANNOTATION


@dataclass(frozen=True)
class _Server:
    uid: str
    user_id: str
    project_id: str


async def _log(request: web.Request, verb: str) -> tuple[_Server, list[dict[str, Any]]]:
    """The server (from 2.21 also a deleted one) and its action log."""
    ident, rule = request.match_info["server_id"], f"os_compute_api:os-instance-actions:{verb}"
    views = request.app[VIEWS]
    try:
        inst = await find(request, ident, rule)
    except ComputeFault as fault:
        gone = await views.server_ref(ident, deleted=True) if since(request, "2.21") else None
        if fault.code != 404 or gone is None:
            raise
        project_id = keystone_id_of(gone.project_uid)
        if not allowed(request, rule, project_id):
            raise
        return _Server(ident, gone.user_id, project_id), await views.actions(ident)
    project_id = (await refs_for(request, [inst]))[inst["metadata"]["uid"]].project_id
    # the actions of every change of the instance so far are in SQL with it
    await views.caught_up(int(inst["metadata"]["resourceVersion"]))
    user_id = (inst["metadata"].get("annotations") or {}).get(USER_ANNOTATION, "")
    return _Server(ident, user_id, project_id), await views.actions(ident)


def _view(server: _Server, action: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": action["action"],
        "instance_uuid": action["instance_uuid"],
        "message": action["message"],
        "project_id": server.project_id,
        "request_id": action["request_id"],
        "start_time": action["start_time"],
        "user_id": server.user_id,
    }


async def list_actions(request: web.Request) -> web.Response:
    server, log = await _log(request, "list")
    return web.json_response({"instanceActions": [_view(server, a) for a in log]})


async def show_action(request: web.Request) -> web.Response:
    server, log = await _log(request, "show")
    wanted = request.match_info["request_id"]
    for action in log:
        if action["request_id"] == wanted:
            body = _view(server, action)
            if allowed(request, "os_compute_api:os-instance-actions:events", server.project_id):
                body["events"] = await request.app[VIEWS].events(action["id"])
            return web.json_response({"instanceAction": body})
    raise ComputeFault(404, f"Action for request_id {wanted} on instance {server.uid} not found")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/servers/{server_id}/os-instance-actions", list_actions)
    app.router.add_get("/v2.1/servers/{server_id}/os-instance-actions/{request_id}", show_action)
