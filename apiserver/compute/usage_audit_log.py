"""Compute API ``/os-instance_usage_audit_log[/{before}]`` (admins).

Owns: Nova's audit log of instance usage for the last completed month
(before now, or before the timestamp given as ``%Y-%m-%d %H:%M:%S[.%f]``;
400 otherwise). No host of desired runs Nova's usage audit (a periodic task
Nova also leaves off by default), so every compute host is among
``hosts_not_run`` and the log is empty: what Nova answers when the audit is
off.

Must never: answer a non-admin, or claim an audit that did not run.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, authorize, store_of
from apiserver.compute.faults import ComputeFault

_FORMAT = "%Y-%m-%d %H:%M:%S"


def _period(before: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The last month that ended before ``before``: its first instant and the next
    month's."""
    end = before.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if end >= before:
        end = (end - dt.timedelta(days=1)).replace(day=1)
    begin = (end - dt.timedelta(days=1)).replace(day=1)
    return begin, end


async def _log(request: web.Request, before: dt.datetime) -> dict[str, Any]:
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    hosts = sorted(h.node.host for h in await views.hosts())
    begin, end = _period(before)
    return {
        "hosts_not_run": hosts,
        "log": {},
        "num_hosts": len(hosts),
        "num_hosts_done": 0,
        "num_hosts_not_run": len(hosts),
        "num_hosts_running": 0,
        "overall_status": f"0 of {len(hosts)} hosts done. 0 errors.",
        "period_beginning": begin.strftime(_FORMAT),
        "period_ending": end.strftime(_FORMAT),
        "total_errors": 0,
        "total_instances": 0,
    }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


async def index(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:os-instance-usage-audit-log:list")
    return web.json_response({"instance_usage_audit_logs": await _log(request, _now())})


def _timestamp(text: str) -> dt.datetime:
    for form in (_FORMAT, f"{_FORMAT}.%f"):
        try:
            return dt.datetime.strptime(text, form)
        except ValueError:
            continue
    raise ComputeFault(400, f"Invalid timestamp for date {text}")


async def show(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:os-instance-usage-audit-log:show")
    before = _timestamp(request.match_info["before"])
    return web.json_response({"instance_usage_audit_log": await _log(request, before)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-instance_usage_audit_log", index)
    app.router.add_get("/v2.1/os-instance_usage_audit_log/{before}", show)
