"""Compute API migrations (admins): ``/os-migrations`` and a server's live migrations.

Owns: Nova's os-migrations view of the migrations the conductor records
(resizes, in place on their host: source and destination are that host;
2.23 adds ``migration_type``), its filters (``host``, ``status``,
``instance_uuid``, ``migration_type``, ``source_compute``), and 2.23's
``/servers/{id}/migrations``, which lists in-progress live migrations: none
here.

Must never: answer a non-admin.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import VIEWS, authorize, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import require, since
from apiserver.compute.servers import find
from apiserver.compute.times import nova_time
from state.sql.migration_lists import Migration, MigrationQuery


def _view(request: web.Request, m: Migration) -> dict[str, Any]:
    out: dict[str, Any] = {
        "created_at": nova_time(m.created_at),
        "dest_compute": m.dest_compute,
        "dest_host": m.dest_host,
        "dest_node": m.dest_compute,
        "id": m.id,
        "instance_uuid": m.instance_uid,
        "new_instance_type_id": m.new_flavor_id,
        "old_instance_type_id": m.old_flavor_id,
        "source_compute": m.source_compute,
        "source_node": m.source_compute,
        "status": m.status,
        "updated_at": nova_time(m.updated_at),
    }
    if since(request, "2.23"):
        out["migration_type"] = m.migration_type
    return out


async def index(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:os-migrations:index")
    q = request.query
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    found = await views.migrations(
        MigrationQuery(
            host=q.get("host"),
            status=q.get("status"),
            instance_uid=q.get("instance_uuid"),
            migration_type=q.get("migration_type"),
            source_compute=q.get("source_compute"),
        )
    )
    return web.json_response({"migrations": [_view(request, m) for m in found]})


async def server_migrations(request: web.Request) -> web.Response:
    require(request, "2.23")
    await find(request, request.match_info["server_id"], "os_compute_api:servers:migrations:index")
    return web.json_response({"migrations": []})


async def server_migration(request: web.Request) -> web.Response:
    require(request, "2.23")
    sid = request.match_info["server_id"]
    await find(request, sid, "os_compute_api:servers:migrations:show")
    mid = request.match_info["migration_id"]
    raise ComputeFault(404, f"In-progress live migration {mid} is not found for server {sid}.")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-migrations", index)
    app.router.add_get("/v2.1/servers/{server_id}/migrations", server_migrations)
    app.router.add_get("/v2.1/servers/{server_id}/migrations/{migration_id}", server_migration)
