"""Compute API instance actions: ``/servers/{id}/os-instance-actions[/{request_id}]``.

Owns: Nova's 2.1 views of the action log the conductor keeps in SQL
(newest first; the events of one action for admins), read after SQL has
caught up with the server as the request found it in etcd (a client sees
the action of the change it just made).

Must never: show another project's actions.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, allowed
from apiserver.compute.faults import ComputeFault
from apiserver.compute.server_lists import refs_for
from apiserver.compute.servers import find
from state.envelope import USER_ANNOTATION, Obj


async def _log(request: web.Request, verb: str) -> tuple[Obj, str, list[dict[str, Any]]]:
    """The server, its project's id and its action log."""
    inst = await find(
        request, request.match_info["server_id"], f"os_compute_api:os-instance-actions:{verb}"
    )
    views = request.app[VIEWS]
    project_id = (await refs_for(views, [inst]))[inst["metadata"]["uid"]].project_id
    # the actions of every change of the instance so far are in SQL with it
    await views.caught_up(int(inst["metadata"]["resourceVersion"]))
    return inst, project_id, await views.actions(inst["metadata"]["uid"])


def _view(inst: Obj, project_id: str, action: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": action["action"],
        "instance_uuid": action["instance_uuid"],
        "message": action["message"],
        "project_id": project_id,
        "request_id": action["request_id"],
        "start_time": action["start_time"],
        "user_id": (inst["metadata"].get("annotations") or {}).get(USER_ANNOTATION, ""),
    }


async def list_actions(request: web.Request) -> web.Response:
    inst, project_id, log = await _log(request, "list")
    return web.json_response({"instanceActions": [_view(inst, project_id, a) for a in log]})


async def show_action(request: web.Request) -> web.Response:
    inst, project_id, log = await _log(request, "show")
    wanted = request.match_info["request_id"]
    for action in log:
        if action["request_id"] == wanted:
            body = _view(inst, project_id, action)
            if allowed(request, "os_compute_api:os-instance-actions:events", project_id):
                body["events"] = await request.app[VIEWS].events(action["id"])
            return web.json_response({"instanceAction": body})
    raise ComputeFault(
        404, f"Action for request_id {wanted} on instance {inst['metadata']['uid']} not found"
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/servers/{server_id}/os-instance-actions", list_actions)
    app.router.add_get("/v2.1/servers/{server_id}/os-instance-actions/{request_id}", show_action)
