"""Compute API server lists (``GET /servers`` and ``/servers/detail``) from SQL.

Owns: reading Nova's query parameters as Nova does up to 2.47 (unknown
filters dropped for members, admins' extra filters, ``all_tenants``, status
names to vm and task states (an unknown one is a 400 from 2.38),
``changes-since`` bringing deleted servers along, reservation ids, 2.26's tag
filters, sort keys and directions, markers; ``limit`` and the
``servers_links`` "next" link as ``paging`` reads and makes them), and
looking up what server views show beside an Instance (flavor, image and
project ids, the flavor, the host's status).

Must never: list before SQL reflects this API server's own writes (a client
reads what it just wrote); list another project's servers for a member;
compile or match a user's pattern (``name``, ``ip``) on the event loop
(``state.sql.server_lists`` does, in the list's worker thread, with RE2).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from apiserver.compute.context import (
    VIEWS,
    allowed,
    authorize,
    own_project,
    store_of,
)
from apiserver.compute.faults import ComputeFault
from apiserver.compute.flavors import flavor_id, flavor_name
from apiserver.compute.microversions import since
from apiserver.compute.paging import limit_of, next_links
from apiserver.compute.server_views import Refs, links, view
from apiserver.identity import keystone_id_of, uid_of
from state import ipam, patterns
from state.envelope import Obj
from state.instance_states import states_of
from state.sql.hosts import HostRow
from state.sql.server_lists import SORT_COLUMNS, ServerQuery, ServerRow
from state.sql.views import ComputeViews

#: filters a member may use; the others are dropped from a member's query, as Nova does
_MEMBER_FILTERS = {
    "reservation_id",
    "name",
    "status",
    "image",
    "flavor",
    "ip",
    "changes-since",
    "all_tenants",
}
#: 2.26's tag filters (comma-separated tags each)
_TAG_FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")
_PAGING = {"sort_key", "sort_dir", "limit", "marker"}
#: filters on joined tables Nova refuses with 400
_JOINED = {
    "block_device_mapping",
    "services",
    "metadata",
    "system_metadata",
    "info_cache",
    "security_groups",
    "pci_devices",
}
#: admins' filters that match a column exactly
_EQUAL = {
    "host": "host",
    "node": "host",
    "user_id": "user_id",
    "uuid": "uid",
    "key_name": "key_name",
    "availability_zone": "availability_zone",
}
#: sort keys Nova accepts but ignores
_IGNORED_SORT_KEYS = {
    "architecture",
    "cell_name",
    "cleaned",
    "default_ephemeral_device",
    "default_swap_device",
    "deleted",
    "deleted_at",
    "disable_terminate",
    "ephemeral_gb",
    "ephemeral_key_uuid",
    "id",
    "key_data",
    "launched_on",
    "locked",
    "memory_mb",
    "os_type",
    "reservation_id",
    "root_gb",
    "shutdown_terminate",
    "user_data",
    "vcpus",
    "vm_mode",
}
#: sort keys Nova accepts whose value is the same for every server here, so they
#: do not change the order
_CONSTANT_SORT_KEYS = {
    "access_ip_v4",
    "access_ip_v6",
    "auto_disk_config",
    "config_drive",
    "display_description",
    "kernel_id",
    "launch_index",
    "launched_at",
    "locked_by",
    "progress",
    "ramdisk_id",
    "root_device_name",
    "terminated_at",
}
_VALID_SORT_KEYS = sorted(set(SORT_COLUMNS) | _IGNORED_SORT_KEYS | _CONSTANT_SORT_KEYS)
_TRUE = {"1", "t", "true", "on", "y", "yes"}
_FALSE = {"0", "f", "false", "off", "n", "no"}


def _flag(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ComputeFault(
        400,
        f"Invalid input received: Unrecognized value '{value}', acceptable values are: "
        "'0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'",
    )


def _time(name: str, value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ComputeFault(
            400,
            f"Invalid input for query parameters {name}. Value: {value}. "
            f"'{value}' is not a 'date-time'",
        ) from None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _sort(request: web.Request, admin: bool) -> tuple[tuple[str, str], ...]:
    keys = [k.strip() for k in request.query.getall("sort_key", [])]
    dirs = [d.strip() for d in request.query.getall("sort_dir", [])]
    for key in keys:
        if key not in _VALID_SORT_KEYS:
            raise ComputeFault(
                400,
                f"Invalid input for query parameters sort_key. Value: {key}. "
                f"'{key}' is not one of {_VALID_SORT_KEYS}",
            )
    for d in dirs:
        if d not in ("asc", "desc"):
            raise ComputeFault(
                400, "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'"
            )
    if len(dirs) > len(keys) and keys:
        raise ComputeFault(400, "Invalid input received: Sort direction size exceeds sort key size")
    if not keys:
        keys = ["created_at"]
        dirs = dirs[:1] or ["desc"]
    dirs += [dirs[0] if dirs else "desc"] * (len(keys) - len(dirs))
    pairs = []
    for key, d in zip(keys, dirs, strict=True):
        if key in ("host", "node") and not admin:
            raise ComputeFault(403, f"Only administrators can sort servers by {key}")
        if key in SORT_COLUMNS:
            pairs.append((key, d))
    return tuple(pairs)


async def _query(request: web.Request) -> ServerQuery | None:
    """The SQL query a list request stands for; None when no server can match."""
    action = "detail" if request.path.endswith("/detail") else "index"
    authorize(request, f"os_compute_api:servers:{action}")
    admin = allowed(request, "os_compute_api:servers:allow_all_filters")
    views = request.app[VIEWS]
    opts = {k: request.query.getone(k) for k in request.query if k not in _PAGING}
    if not admin:
        members = set(_MEMBER_FILTERS)
        if since(request, "2.5"):
            members.add("ip6")
        if since(request, "2.26"):
            members.update(_TAG_FILTERS)
        opts = {k: v for k, v in opts.items() if k in members}
    for k in opts:
        if k in _JOINED or k.startswith("_"):
            raise ComputeFault(400, f"Invalid filter field: {k}.")
    all_tenants = "all_tenants" in opts and (
        opts["all_tenants"] == "" or _flag("all_tenants", opts["all_tenants"])
    )
    if all_tenants:
        authorize(request, f"os_compute_api:servers:{action}:get_all_tenants")
    project: str | None
    if all_tenants:
        project = None
        wanted = opts.get("project_id") or opts.get("tenant_id")
        if wanted:
            project = await views.name_by_uid("Project", uid_of(wanted)) or wanted
    else:
        project = own_project(request, "servers")
    # name and ip: RE2 patterns, checked where SQL runs them (off the event loop)
    name = opts.get("name", opts.get("display_name"))
    vm_states: frozenset[str] = frozenset()
    task_states: frozenset[str] = frozenset()
    if "status" in request.query and "status" in opts:
        vms, tasks = states_of(request.query.getall("status"))
        if not vms:
            if since(request, "2.38"):
                raise ComputeFault(400, "Invalid status value")
            return None  # Nova before 2.38: an unknown status matches nothing
        vm_states, task_states = frozenset(vms), frozenset(tasks)
    if "vm_state" in opts and admin:
        vm_states = frozenset(request.query.getall("vm_state"))
    if "task_state" in opts and admin:
        task_states = frozenset(request.query.getall("task_state"))
    changes_since = (
        _time("changes-since", opts["changes-since"]) if "changes-since" in opts else None
    )
    deleted: bool | None = None if changes_since is not None else False
    if "deleted" in opts:
        deleted = opts["deleted"].strip().lower() in _TRUE
    if vm_states == {"deleted"}:
        if not admin:
            raise ComputeFault(403, "Only administrators may list deleted instances")
        deleted = True
    equal = {column: opts[k] for k, column in _EQUAL.items() if k in opts}
    if "image" in opts:
        equal["image"] = await views.name_by_uid("Image", opts["image"]) or opts["image"]
    if "flavor" in opts:
        flavors = (await store_of(request).list("Flavor")).items
        named = [f["metadata"]["name"] for f in flavors if flavor_id(f) == opts["flavor"]]
        equal["flavor"] = named[0] if named else opts["flavor"]
    if "reservation_id" in opts:
        equal["reservation_id"] = opts["reservation_id"]
    if "ip6" in opts:
        return None  # no server has an IPv6 address here
    ip = opts.get("ip")
    tags = {
        f: tuple(t for t in opts[f].split(",") if t)
        for f in _TAG_FILTERS
        if f in opts and since(request, "2.26")
    }
    return ServerQuery(
        project=project,
        name=name,
        vm_states=vm_states,
        task_states=task_states,
        deleted=deleted,
        changes_since=changes_since,
        equal=equal,
        sort=_sort(request, allowed(request, "context_is_admin")),
        limit=limit_of(request),
        marker=request.query.get("marker"),
        tags=tags.get("tags", ()),
        tags_any=tags.get("tags-any", ()),
        not_tags=tags.get("not-tags", ()),
        not_tags_any=tags.get("not-tags-any", ()),
        ip=ip,
    )


async def _rows(request: web.Request) -> list[ServerRow]:
    query = await _query(request)
    if query is None or query.limit == 0:
        # nothing to list, yet a pattern RE2 does not take is Nova's 400 all the same
        for field in ("name", "ip"):
            if request.query.get(field):
                await asyncio.to_thread(patterns.compiled, field, request.query[field])
        return []
    views = request.app[VIEWS]
    await views.caught_up(store_of(request).written)
    # an unknown marker, a pattern RE2 does not take or whose query runs too long: 400
    return await views.servers(query)


async def refs_for(request: web.Request, objects: Iterable[Obj]) -> dict[str, Refs]:
    """Per Instance uid: what its view shows beside the Instance itself (the ids of its
    flavor, image and project from SQL; at the microversions that show them, its flavor,
    its host's status and its image's kernel and ramdisk)."""
    objects = list(objects)
    views: ComputeViews = request.app[VIEWS]
    found = await views.objects_by_name(
        {
            "Flavor": {o["spec"].get("flavor", "") for o in objects},
            "Image": {o["spec"].get("image", "") for o in objects},
            "Project": {o["metadata"].get("project", "") for o in objects},
        }
    )
    uids = {key: obj["metadata"]["uid"] for key, obj in found.items()}
    flavors = {name: obj for (kind, _, name), obj in found.items() if kind == "Flavor"}
    host_status: dict[str, str] | None = None
    if since(request, "2.16") and allowed(request, "os_compute_api:servers:show:host_status"):
        host_status = {h.node.host: _host_status(h) for h in await views.hosts()}
    boots: dict[tuple[str, str], tuple[str, str]] = {}
    if since(request, "2.3") and allowed(request, "os_compute_api:os-extended-server-attributes"):
        boots = await _boot_images(request)
    floating = await _floating_ips(request)
    out = {}
    for o in objects:
        meta, spec = o["metadata"], o["spec"]
        project = meta.get("project", "")
        image = spec.get("image", "")
        host = o.get("status", {}).get("host")
        kernel, ramdisk = boots.get((project, image)) or boots.get(("", image)) or ("", "")
        flavor = flavors.get(spec.get("flavor", ""))
        out[meta["uid"]] = Refs(
            flavor_id=flavor_id(flavor) if flavor else "",
            image_id=uids.get(("Image", project, image)) or uids.get(("Image", "", image), ""),
            project_id=keystone_id_of(uids.get(("Project", "", project), project)),
            flavor={"name": flavor_name(flavor), "spec": flavor["spec"]} if flavor else None,
            host_status=None if host_status is None else host_status.get(host or "", ""),
            kernel_id=kernel,
            ramdisk_id=ramdisk,
            floating=_mapped(floating.get((project, meta["name"]), []), o),
        )
    return out


async def _floating_ips(
    request: web.Request,
) -> dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]:
    """Per instance (project, name): the addresses and specs of the floating IPs associated
    with it (one read of all floating IPs: they are few beside servers)."""
    found: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for f in (await store_of(request).list("FloatingIP")).items:
        address = ipam.floating_address(f)
        if f["spec"].get("instance") and address:
            key = (f["metadata"]["project"], f["spec"]["instance"])
            found.setdefault(key, []).append((address, f["spec"]))
    return found


def _mapped(floating: list[tuple[str, dict[str, Any]]], inst: Obj) -> tuple[tuple[str, int], ...]:
    """An instance's floating IPs, each with the index of the port it maps to."""
    ports = (inst.get("status") or {}).get("ports") or []
    pairs = [
        (address, ipam.floating_port(spec, ports))
        for address, spec in sorted(floating, key=lambda a: a[0])
    ]
    return tuple((address, index) for address, index in pairs if index is not None)


def _host_status(h: HostRow) -> str:
    """Nova's status of a server's host: forced down, disabled, alive or not heard from."""
    if h.spec.get("forcedDown"):
        return "DOWN"
    if not h.enabled:
        return "MAINTENANCE"
    return "UP" if h.node.alive else "UNKNOWN"


async def _boot_images(request: web.Request) -> dict[tuple[str, str], tuple[str, str]]:
    """Per image (project, name): the uids of its kernel and ramdisk images."""
    images = (await store_of(request).list("Image")).items
    uid = {
        (i["metadata"].get("project", ""), i["metadata"]["name"]): i["metadata"]["uid"]
        for i in images
    }

    def of(project: str, name: str | None) -> str:
        if not name:
            return ""
        return uid.get((project, name)) or uid.get(("", name), "")

    out = {}
    for i in images:
        project, spec = i["metadata"].get("project", ""), i["spec"]
        out[(project, i["metadata"]["name"])] = (
            of(project, spec.get("kernelImage")),
            of(project, spec.get("ramdiskImage")),
        )
    return out


async def list_servers(request: web.Request) -> web.Response:
    rows = await _rows(request)
    servers = [
        {"id": r.uid, "name": r.name, "links": links(request, "servers", r.uid)} for r in rows
    ]
    body: dict[str, Any] = {"servers": servers}
    if more := next_links(request, len(rows), "servers", rows[-1].uid if rows else ""):
        body["servers_links"] = more
    return web.json_response(body)


async def list_detail(request: web.Request) -> web.Response:
    rows = await _rows(request)
    refs = await refs_for(request, (r.object for r in rows))
    servers = []
    for r in rows:
        ref = dataclasses.replace(refs[r.uid], updated=r.updated_at, deleted=r.deleted)
        servers.append(view(request, r.object, ref))
    body: dict[str, Any] = {"servers": servers}
    if more := next_links(request, len(rows), "servers/detail", rows[-1].uid if rows else ""):
        body["servers_links"] = more
    return web.json_response(body)
