"""Compute API quotas and limits: ``/os-quota-sets/{project_id}[/defaults|/detail]``, ``/limits``.

Owns: Nova's views up to 2.47 (2.36 drops the network quotas and limits,
2.39 ``maxImageMeta``) of a project's limits (its Quota object over the
cloud's defaults) and usage (``state.quota``'s counters for instances,
cores and ram; key pairs and server groups counted), admins' updates and
resets (the project's Quota object ``default``), and who may read what (a
project its own, admins every project's). There are no per-user quotas: a
user's limits (``?user_id=``) are its project's, and setting them is a 400.

Must never: let a non-admin change a quota or read another project's.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.context import authorize, json_body, own_project, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.identity import keystone_id
from state import quota
from state.envelope import Ref
from state.errors import NotFound
from state.store import Store
from state.validation import validate

#: the fields of a 2.1 quota set, in Nova's names
FIELDS = (
    "cores",
    "fixed_ips",
    "floating_ips",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
    "injected_files",
    "instances",
    "key_pairs",
    "metadata_items",
    "ram",
    "security_group_rules",
    "security_groups",
    "server_group_members",
    "server_groups",
)


async def _project(request: web.Request, rule: str) -> tuple[str, str]:
    """(Keystone id, name) of the project in the path, if the policy lets the caller do
    ``rule`` on it."""
    wanted = request.match_info["project_id"]
    for p in (await store_of(request).list("Project")).items:
        if wanted in (keystone_id(p), p["metadata"]["name"]):
            authorize(request, f"os_compute_api:os-quota-sets:{rule}", keystone_id(p))
            return keystone_id(p), p["metadata"]["name"]
    raise ComputeFault(404, f"Project {wanted} could not be found.")


#: the network quotas 2.36 removes from quota sets
NETWORK_FIELDS = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")


def _fields(request: web.Request) -> tuple[str, ...]:
    """The fields of a quota set at the request's version."""
    if since(request, "2.36"):
        return tuple(f for f in FIELDS if f not in NETWORK_FIELDS)
    return FIELDS


def _limits_view(request: web.Request, limits: dict[str, int]) -> dict[str, int]:
    return {f: limits.get(f, -1) for f in _fields(request)}


async def _in_use(request: web.Request, project: str) -> dict[str, int]:
    store = store_of(request)
    used, _ = await quota.usage(store, project)
    return {
        **used,
        "key_pairs": len((await store.list("KeyPair", project)).items),
        "server_groups": len((await store.list("ServerGroup", project)).items),
    }


async def show(request: web.Request) -> web.Response:
    pid, name = await _project(request, "show")
    limits = await quota.limits(store_of(request), name)
    return web.json_response({"quota_set": {"id": pid, **_limits_view(request, limits)}})


async def defaults(request: web.Request) -> web.Response:
    pid, _ = await _project(request, "defaults")
    defaults = await quota.defaults(store_of(request))
    return web.json_response({"quota_set": {"id": pid, **_limits_view(request, defaults)}})


async def detail(request: web.Request) -> web.Response:
    pid, name = await _project(request, "detail")
    limits = _limits_view(request, await quota.limits(store_of(request), name))
    used = await _in_use(request, name)
    body: dict[str, Any] = {
        f: {"in_use": used.get(f, 0), "limit": limit, "reserved": 0} for f, limit in limits.items()
    }
    return web.json_response({"quota_set": {"id": pid, **body}})


async def update(request: web.Request) -> web.Response:
    _, name = await _project(request, "update")
    if "user_id" in request.query:  # (a user's shown limits are its project's)
        raise ComputeFault(400, "Per-user quotas are not supported; set the project's")
    asked = _asked(await json_body(request), "quota_set", _fields(request))
    store = store_of(request)
    await _write_limits(store, Ref("Quota", name, "default"), asked)
    merged = await quota.limits(store, name)
    return web.json_response({"quota_set": _limits_view(request, merged)})


async def _write_limits(store: Store, ref: Ref, asked: dict[str, int]) -> None:
    """Writes ``asked`` over the limits of the Quota or QuotaClass ``ref`` (made if absent)."""
    current = await store.get_or_none(ref)
    limits = {**((current or {}).get("spec", {}).get("limits") or {}), **asked}
    metadata = {"name": ref.name, **({"project": ref.project} if ref.project else {})}
    checked = validate({"kind": ref.kind, "metadata": metadata, "spec": {"limits": limits}})
    if current is None:
        await store.create(checked)
    else:
        await store.update(dict(current, spec=checked["spec"]))


async def reset(request: web.Request) -> web.Response:
    _, name = await _project(request, "delete")
    try:
        await store_of(request).delete(Ref("Quota", name, "default"))
    except NotFound:
        pass
    return web.Response(status=202)


#: the fields of a 2.1 quota class set
CLASS_FIELDS = tuple(f for f in FIELDS if not f.startswith("server_group"))


def _asked(body: Any, key: str, fields: tuple[str, ...]) -> dict[str, int]:
    """The limits a PUT asks for, in Nova's names (``force`` ignored)."""
    asked = body.get(key) if isinstance(body, dict) else None
    if not isinstance(asked, dict):
        raise ComputeFault(400, f"Invalid input for field/attribute {key}.")
    asked = {k: v for k, v in asked.items() if k != "force"}
    unknown = sorted(set(asked) - set(fields))
    if unknown:
        raise ComputeFault(
            400, f"Additional properties are not allowed ({unknown} were unexpected)"
        )
    out = {}
    for field, value in asked.items():
        try:
            out[field] = int(value)
        except (TypeError, ValueError):
            raise ComputeFault(400, f"Invalid input for field/attribute {field}.") from None
    return out


def _class_view(limits: dict[str, int]) -> dict[str, int]:
    return {f: limits.get(f, -1) for f in CLASS_FIELDS}


async def show_class(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:os-quota-class-sets:show")
    name = request.match_info["class_name"]
    defaults = await quota.defaults(store_of(request))
    return web.json_response({"quota_class_set": {"id": name, **_class_view(defaults)}})


async def update_class(request: web.Request) -> web.Response:
    """Only the class ``default`` has an effect (as in Nova); others are accepted and kept
    nowhere."""
    authorize(request, "os_compute_api:os-quota-class-sets:update")
    asked = _asked(await json_body(request), "quota_class_set", CLASS_FIELDS)
    store = store_of(request)
    if request.match_info["class_name"] == "default":
        await _write_limits(store, Ref("QuotaClass", None, "default"), asked)
    return web.json_response({"quota_class_set": _class_view(await quota.defaults(store))})


async def limits_view(request: web.Request) -> web.Response:
    authorize(request, "os_compute_api:limits")
    project = own_project(request, "limits")
    limits = await quota.limits(store_of(request), project)
    used = await _in_use(request, project)
    absolute = {
        "maxImageMeta": limits["metadata_items"],
        "maxPersonality": limits["injected_files"],
        "maxPersonalitySize": limits["injected_file_content_bytes"],
        "maxSecurityGroupRules": limits["security_group_rules"],
        "maxSecurityGroups": limits["security_groups"],
        "maxServerGroupMembers": limits["server_group_members"],
        "maxServerGroups": limits["server_groups"],
        "maxServerMeta": limits["metadata_items"],
        "maxTotalCores": limits["cores"],
        "maxTotalFloatingIps": limits["floating_ips"],
        "maxTotalInstances": limits["instances"],
        "maxTotalKeypairs": limits["key_pairs"],
        "maxTotalRAMSize": limits["ram"],
        "totalCoresUsed": used["cores"],
        "totalFloatingIpsUsed": 0,
        "totalInstancesUsed": used["instances"],
        "totalRAMUsed": used["ram"],
        "totalSecurityGroupsUsed": 0,
        "totalServerGroupsUsed": used["server_groups"],
    }
    if since(request, "2.36"):
        for gone in (
            "maxSecurityGroupRules",
            "maxSecurityGroups",
            "maxTotalFloatingIps",
            "totalFloatingIpsUsed",
            "totalSecurityGroupsUsed",
        ):
            del absolute[gone]
    if since(request, "2.39"):
        del absolute["maxImageMeta"]
    return web.json_response({"limits": {"absolute": absolute, "rate": []}})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v2.1/os-quota-sets/{project_id}", show)
    app.router.add_put("/v2.1/os-quota-sets/{project_id}", update)
    app.router.add_delete("/v2.1/os-quota-sets/{project_id}", reset)
    app.router.add_get("/v2.1/os-quota-sets/{project_id}/defaults", defaults)
    app.router.add_get("/v2.1/os-quota-sets/{project_id}/detail", detail)
    app.router.add_get("/v2.1/limits", limits_view)
    app.router.add_get("/v2.1/os-quota-class-sets/{class_name}", show_class)
    app.router.add_put("/v2.1/os-quota-class-sets/{class_name}", update_class)
