"""Compute API os-services (admins): the compute services, and disabling or enabling one.

Owns: Nova's service views of the compute hosts up to 2.47 (``nova-compute``
on each; its id is the Host object's row id, as its hypervisor's; 2.11's
``forced_down``), and the enable, disable and disable-log-reason actions,
which set ``enabled`` and ``disabledReason`` of the Host object (the
scheduler places nothing new on a disabled host), and 2.11's force-down,
which sets ``forcedDown`` (the host counts as down).

Must never: answer a non-admin; list the scheduler or conductor (they are
not per-host services here: one leader each, see ``desired reconcilers``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, authorize, json_body, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.times import nova_time
from state.envelope import Ref
from state.errors import Conflict, NotFound
from state.sql.hosts import HostRow
from state.validation import validate

BINARY = "nova-compute"
#: tries of an update whose Host object changed meanwhile
_RETRIES = 5


def _view(request: web.Request, h: HostRow) -> dict[str, Any]:
    out = {
        "id": h.id,
        "binary": BINARY,
        "disabled_reason": None if h.enabled else h.spec.get("disabledReason"),
        "host": h.node.host,
        "state": "up" if h.up else "down",
        "status": "enabled" if h.enabled else "disabled",
        "updated_at": nova_time(h.updated_at),
        "zone": h.node.zone,
    }
    if since(request, "2.11"):
        out["forced_down"] = bool(h.spec.get("forcedDown", False))
    return out


async def index(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:os-services:list")
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    host, binary = request.query.get("host"), request.query.get("binary")
    rows = [] if binary not in (None, BINARY) else await views.hosts(host)
    return web.json_response({"services": [_view(request, h) for h in rows]})


def _field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ComputeFault(400, f"Invalid input for field/attribute {name}.")
    return value


async def update(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:os-services:update")
    action = request.match_info["action"]
    actions = ("enable", "disable", "disable-log-reason")
    if action not in actions and not (action == "force-down" and since(request, "2.11")):
        raise ComputeFault(404, "Unknown action")
    body = await json_body(request)
    host, binary = _field(body, "host"), _field(body, "binary")
    if binary != BINARY:
        raise ComputeFault(404, f"Could not find binary {binary} on host {host}.")
    if action == "force-down":
        forced = body.get("forced_down")
        if not isinstance(forced, bool):
            raise ComputeFault(400, "Invalid input for field/attribute forced_down.")
        await change_host(request, host, {"forcedDown": forced})
        return web.json_response(
            {"service": {"binary": binary, "host": host, "forced_down": forced}}
        )
    reason = _field(body, "disabled_reason") if action == "disable-log-reason" else None
    change: dict[str, Any] = {"enabled": action == "enable", "disabledReason": reason}
    await change_host(request, host, change)
    service = {"binary": binary, "host": host, "status": f"{action.split('-')[0]}d"}
    if reason:
        service["disabled_reason"] = reason
    return web.json_response({"service": service})


async def change_host(request: web.Request, host: str, change: dict[str, Any]) -> None:
    """Sets the fields of ``change`` in the Host's spec (a None value removes one)."""
    store = store_of(request)
    for _ in range(_RETRIES):
        try:
            obj = await store.get(Ref("Host", None, host))
        except NotFound:
            raise ComputeFault(404, f"Could not find binary {BINARY} on host {host}.") from None
        spec = {k: v for k, v in obj["spec"].items() if k not in change}
        spec.update({k: v for k, v in change.items() if v is not None})
        obj["spec"] = spec
        try:
            await store.update(validate(obj))
            return
        except Conflict:
            continue  # hostd or another admin changed it meanwhile: read it again
    raise ComputeFault(409, f"Host {host} kept changing; retry")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-services", index)
    app.router.add_put("/v2.1/os-services/{action}", update)
