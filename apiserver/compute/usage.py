"""Compute API os-simple-tenant-usage: usage of servers over a period, per project.

Owns: reading ``start`` and ``end`` as Nova does (now when absent; three
formats; 400 when invalid or reversed), and Nova's usage views: per project
the hours and the vCPU, RAM and disk hours of its servers within the period,
with each server's usage when ``detailed`` (the list) or always (one
project); projects are named by their Keystone id. The servers counted are
a page of ``api.max_limit`` (from 2.40 as ``limit`` and ``marker`` ask, with
a "next" link).

Must never: show a member another project's usage.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from apiserver.compute.context import MAX_LIMIT, VIEWS, authorize, project_ids, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.paging import page
from apiserver.compute.times import nova_time
from apiserver.identity import keystone_id_of, uid_of
from state.sql.usage import ServerUsage

_RULE = "os_compute_api:os-simple-tenant-usage"
_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _when(text: str | None) -> dt.datetime:
    if not text:
        return dt.datetime.now(dt.UTC)
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    raise ComputeFault(400, "Invalid input received: Datetime is in invalid format")


def _period(request: web.Request) -> tuple[dt.datetime, dt.datetime]:
    start, stop = _when(request.query.get("start")), _when(request.query.get("end"))
    if start > stop:
        raise ComputeFault(
            400, "Invalid start time. The start time cannot occur after the end time."
        )
    return start, stop


def _server(u: ServerUsage, tenant_id: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {
        "ended_at": nova_time(u.ended_at) if u.ended_at else None,
        "flavor": u.flavor,
        "hours": u.hours,
        "instance_id": u.uid,
        "local_gb": u.local_gb,
        "memory_mb": u.memory_mb,
        "name": u.name,
        "started_at": nova_time(u.launched_at),
        "state": "terminated" if u.ended_at else u.vm_state,
        "tenant_id": tenant_id,
        "uptime": int(((u.ended_at or now) - u.launched_at).total_seconds()),
        "vcpus": u.vcpus,
    }


async def _summaries(
    request: web.Request,
    usages: list[ServerUsage],
    start: dt.datetime,
    stop: dt.datetime,
    detailed: bool,
) -> list[dict[str, Any]]:
    ids = await project_ids(request, (u.project for u in usages))
    out: dict[str, dict[str, Any]] = {}
    for u in usages:
        tenant_id = ids[u.project]
        summary = out.setdefault(
            tenant_id,
            {
                "start": nova_time(start),
                "stop": nova_time(stop),
                "tenant_id": tenant_id,
                "total_hours": 0.0,
                "total_local_gb_usage": 0.0,
                "total_memory_mb_usage": 0.0,
                "total_vcpus_usage": 0.0,
                **({"server_usages": []} if detailed else {}),
            },
        )
        summary["total_hours"] += u.hours
        summary["total_local_gb_usage"] += u.local_gb * u.hours
        summary["total_memory_mb_usage"] += u.memory_mb * u.hours
        summary["total_vcpus_usage"] += u.vcpus * u.hours
        if detailed:
            summary["server_usages"].append(_server(u, tenant_id))
    return list(out.values())


def _paged(
    request: web.Request, usages: list[ServerUsage], path: str
) -> tuple[list[ServerUsage], list[dict[str, str]]]:
    """A page of the servers' usages (by creation): from 2.40 as ``limit`` and ``marker``
    ask, with its link; before, the first ``api.max_limit`` of them, as Nova does."""
    if not since(request, "2.40"):
        return usages[: request.app[MAX_LIMIT]], []
    return page(request, usages, lambda u: u.uid, path)


async def index(request: web.Request) -> web.Response:
    authorize(request, f"{_RULE}:list")
    start, stop = _period(request)
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    detailed = request.query.get("detailed", "0") not in ("0", "", "false", "False")
    usages, more = _paged(request, await views.usages(start, stop), "os-simple-tenant-usage")
    body: dict[str, Any] = {
        "tenant_usages": await _summaries(request, usages, start, stop, detailed)
    }
    if more:
        body["tenant_usages_links"] = more
    return web.json_response(body)


async def show(request: web.Request) -> web.Response:
    wanted = request.match_info["tenant_id"]
    authorize(request, f"{_RULE}:show", keystone_id_of(wanted))
    start, stop = _period(request)
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    project = await views.name_by_uid("Project", uid_of(wanted))
    usages = await views.usages(start, stop, project) if project else []
    usages, more = _paged(request, usages, f"os-simple-tenant-usage/{wanted}")
    summaries = await _summaries(request, usages, start, stop, detailed=True)
    body: dict[str, Any] = {"tenant_usage": summaries[0] if summaries else {}}
    if more:
        body["tenant_usage_links"] = more
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-simple-tenant-usage", index)
    app.router.add_get("/v2.1/os-simple-tenant-usage/{tenant_id}", show)
