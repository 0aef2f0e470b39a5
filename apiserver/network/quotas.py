"""Neutron's quotas of a project: its limits on floating IPs, security groups and rules.

They are the project's quota set (``state.quota``: Nova's ``floating_ips``,
``security_groups``, ``security_group_rules``); networks, subnets, ports
and routers have no limit here (-1).

Owns: ``/v2.0/quotas/{project_id}`` (show; set and reset by admins) and
``/details`` (limits with what is used).

Must never: show another project's quotas to a caller who is not an admin.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.network.common import (
    NeutronFault,
    Projects,
    body_of,
    caller,
    is_admin,
    one,
    store_of,
)
from state import quota
from state.envelope import Ref
from state.validation import validate

#: Neutron's resource -> the quota set's limit
LIMITS = {
    "floatingip": "floating_ips",
    "security_group": "security_groups",
    "security_group_rule": "security_group_rules",
}
UNLIMITED = ("network", "subnet", "port", "router", "rbac_policy", "subnetpool")


async def _project(request: web.Request) -> str:
    ident = request.match_info["project_id"]
    name = (await Projects.read(request)).name_of(ident)
    if name is None:
        raise NeutronFault(404, "NotFound", f"Project {ident} could not be found.")
    if name != caller(request).project and not is_admin(request):
        raise NeutronFault(403, "PolicyNotAuthorized", "Only admins see other projects' quotas.")
    return name


async def used(request: web.Request, project: str) -> dict[str, int]:
    store = store_of(request)
    groups = (await store.list("SecurityGroup", project)).items
    return {
        "floatingip": len((await store.list("FloatingIP", project)).items),
        "security_group": len(groups),
        "security_group_rule": sum(len(g["spec"].get("rules", [])) for g in groups),
    }


async def _limits(request: web.Request, project: str) -> dict[str, int]:
    limits = await quota.limits(store_of(request), project)
    return {**{r: limits.get(f, -1) for r, f in LIMITS.items()}, **dict.fromkeys(UNLIMITED, -1)}


async def check(request: web.Request, project: str, resource: str, more: int = 1) -> None:
    """Neutron's 409 OverQuota when ``more`` of ``resource`` would pass the project's limit."""
    limit = (await _limits(request, project))[resource]
    if limit >= 0 and (await used(request, project))[resource] + more > limit:
        raise NeutronFault(409, "OverQuota", f"Quota exceeded for resources: ['{resource}'].")


async def show(request: web.Request) -> web.Response:
    return one("quota", await _limits(request, await _project(request)))


async def details(request: web.Request) -> web.Response:
    project = await _project(request)
    limits, in_use = await _limits(request, project), await used(request, project)
    return one(
        "quota",
        {r: {"limit": v, "used": in_use.get(r, 0), "reserved": 0} for r, v in limits.items()},
    )


async def update(request: web.Request) -> web.Response:
    if not is_admin(request):
        raise NeutronFault(403, "PolicyNotAuthorized", "Only admins set quotas.")
    project = await _project(request)
    body = await body_of(request, "quota")
    store = store_of(request)
    current = await store.get_or_none(Ref("Quota", project, "default"))
    limits: dict[str, Any] = dict((current or {}).get("spec", {}).get("limits", {}))
    for resource, value in body.items():
        if resource not in LIMITS:
            continue  # no limit of desired's: nothing to keep
        if not isinstance(value, int) or value < -1:
            raise NeutronFault(400, "HTTPBadRequest", f"Invalid input for {resource}.")
        limits[LIMITS[resource]] = value
    obj = {
        "kind": "Quota",
        "metadata": {"name": "default", "project": project},
        "spec": {"limits": limits},
    }
    if current is None:
        await store.create(validate(obj))
    else:
        await store.update(validate(dict(current, spec=obj["spec"])))
    return one("quota", await _limits(request, project))


async def reset(request: web.Request) -> web.Response:
    if not is_admin(request):
        raise NeutronFault(403, "PolicyNotAuthorized", "Only admins reset quotas.")
    project = await _project(request)
    store = store_of(request)
    current = await store.get_or_none(Ref("Quota", project, "default"))
    if current is not None:
        limits = {k: v for k, v in current["spec"]["limits"].items() if k not in LIMITS.values()}
        await store.update(validate(dict(current, spec={"limits": limits})))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2.0/quotas/{project_id}", show)
    r.add_get("/v2.0/quotas/{project_id}/details", details)
    r.add_put("/v2.0/quotas/{project_id}", update)
    r.add_delete("/v2.0/quotas/{project_id}", reset)
