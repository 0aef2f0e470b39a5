"""Neutron's security groups and security group rules, over desired's SecurityGroups.

Owns: the handlers and views of ``/v2.0/security-groups`` and
``/v2.0/security-group-rules``; translating Neutron's rule fields
(``protocol``, ``port_range_min``/``max``, ``remote_ip_prefix``,
``remote_group_id``) to a SecurityGroup's rules and back. A project's
``default`` group is made the first time the project lists its groups.

Must never: show or change another project's groups for a caller who is not
an admin.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver import netops
from apiserver.compute.names import is_object_name, object_name_for
from apiserver.network import quotas
from apiserver.network.common import (
    NeutronFault,
    Projects,
    acting_project,
    body_of,
    caller,
    is_admin,
    listing,
    may_write,
    one,
    sees,
    standard,
    store_of,
)
from state.envelope import Obj, Ref
from state.errors import NotFound

_PROTOCOLS = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "6": "tcp", "17": "udp", "1": "icmp"}


def rule_view(
    group: Obj, rule: dict[str, Any], projects: Projects, uids: dict[str, str]
) -> dict[str, Any]:
    protocol = rule.get("protocol", "any")
    return {
        "id": netops.rule_id(group, rule),
        "security_group_id": group["metadata"]["uid"],
        "direction": rule["direction"],
        "ethertype": rule.get("ethertype", "IPv4"),
        "protocol": None if protocol == "any" else str(protocol),
        "port_range_min": rule.get("portRangeMin"),
        "port_range_max": rule.get(
            "portRangeMax", rule.get("portRangeMin") if protocol in ("tcp", "udp") else None
        ),
        "remote_ip_prefix": rule.get("remoteCidr"),
        "remote_group_id": uids.get(rule["remoteGroup"]) if rule.get("remoteGroup") else None,
        "remote_address_group_id": None,
        "normalized_cidr": rule.get("remoteCidr"),
        "description": "",
        "belongs_to_default_sg": group["metadata"]["name"] == netops.DEFAULT_GROUP,
        **standard(group, projects),
    }


def group_view(group: Obj, projects: Projects, uids: dict[str, str]) -> dict[str, Any]:
    return {
        "id": group["metadata"]["uid"],
        "name": group["spec"].get("displayName") or group["metadata"]["name"],
        "description": group["spec"].get("description", ""),
        "stateful": True,
        "shared": False,
        "security_group_rules": [
            rule_view(group, r, projects, uids) for r in group["spec"].get("rules", [])
        ],
        **standard(group, projects),
    }


async def _groups(request: web.Request) -> list[Obj]:
    store = store_of(request)
    if caller(request).project:
        await netops.ensure_default_group(store, caller(request).project)
    project = None if is_admin(request) else caller(request).project
    return [
        g
        for g in (await store.list("SecurityGroup", project)).items
        if not g["metadata"].get("deletionTimestamp")
    ]


def _uids(groups: list[Obj], project: str) -> dict[str, str]:
    """Group name -> uid, within ``project`` (rules name their remote group by name)."""
    return {
        g["metadata"]["name"]: g["metadata"]["uid"]
        for g in groups
        if g["metadata"]["project"] == project
    }


async def _group(request: web.Request, ident: str) -> Obj:
    for g in await _groups(request):
        if g["metadata"]["uid"] == ident:
            return g
    raise NeutronFault(404, "SecurityGroupNotFound", f"Security group {ident} does not exist")


async def list_groups(request: web.Request) -> web.Response:
    groups = await _groups(request)
    projects = await Projects.read(request)
    views = [group_view(g, projects, _uids(groups, g["metadata"]["project"])) for g in groups]
    return listing(request, "security_groups", views)


async def show_group(request: web.Request) -> web.Response:
    group = await _group(request, request.match_info["id"])
    groups = await _groups(request)
    return one(
        "security_group",
        group_view(
            group, await Projects.read(request), _uids(groups, group["metadata"]["project"])
        ),
    )


async def create_group(request: web.Request) -> web.Response:
    may_write(request)
    body = await body_of(request, "security_group")
    project = await acting_project(request, body)
    shown = body.get("name") or ""
    if not isinstance(shown, str) or not shown or len(shown) > 255:
        raise NeutronFault(400, "HTTPBadRequest", "Invalid input for name.")
    name = object_name_for(shown, "sg")
    spec: dict[str, Any] = {"description": str(body.get("description") or ""), "rules": []}
    if not is_object_name(shown):
        spec["displayName"] = shown
    store = store_of(request)
    await quotas.check(request, project, "security_group")
    if await store.get_or_none(Ref("SecurityGroup", project, name)) is not None:
        raise NeutronFault(
            409,
            "SecurityGroupNameExists",
            f"A security group named {shown!r} exists in the project already.",
        )
    made = await netops.create_group(store, project, name, spec)
    return one("security_group", group_view(made, await Projects.read(request), {}), 201)


async def update_group(request: web.Request) -> web.Response:
    may_write(request)
    group = await _group(request, request.match_info["id"])
    body = await body_of(request, "security_group")
    spec = dict(group["spec"])
    if "description" in body:
        spec["description"] = str(body["description"] or "")
    if "name" in body:
        spec["displayName"] = str(body["name"])
    updated = await netops.update_spec(store_of(request), group, spec, admin=is_admin(request))
    return one("security_group", group_view(updated, await Projects.read(request), {}))


async def delete_group(request: web.Request) -> web.Response:
    may_write(request)
    group = await _group(request, request.match_info["id"])
    await netops.delete_group(store_of(request), group)
    return web.Response(status=204)


# --- rules -----------------------------------------------------------------------------


async def list_rules(request: web.Request) -> web.Response:
    groups = await _groups(request)
    projects = await Projects.read(request)
    views = [
        rule_view(g, r, projects, _uids(groups, g["metadata"]["project"]))
        for g in groups
        for r in g["spec"].get("rules", [])
    ]
    return listing(request, "security_group_rules", views)


async def show_rule(request: web.Request) -> web.Response:
    rid = request.match_info["id"]
    groups = await _groups(request)
    for g in groups:
        for r in g["spec"].get("rules", []):
            if netops.rule_id(g, r) == rid:
                return one(
                    "security_group_rule",
                    rule_view(
                        g, r, await Projects.read(request), _uids(groups, g["metadata"]["project"])
                    ),
                )
    raise NeutronFault(
        404, "SecurityGroupRuleNotFound", f"Security group rule {rid} does not exist"
    )


def _rule(body: dict[str, Any], groups: list[Obj], project: str) -> dict[str, Any]:
    direction = body.get("direction")
    if direction not in ("ingress", "egress"):
        raise NeutronFault(
            400,
            "HTTPBadRequest",
            f"Invalid input for direction. Reason: {direction!r} is not in ['ingress', 'egress'].",
        )
    rule: dict[str, Any] = {"direction": direction, "ethertype": body.get("ethertype") or "IPv4"}
    protocol = body.get("protocol")
    if protocol not in (None, "any", "ANY"):
        name = _PROTOCOLS.get(str(protocol).lower())
        if name is None:
            if not str(protocol).isdigit():
                raise NeutronFault(
                    400,
                    "SecurityGroupRuleInvalidProtocol",
                    f"Security group rule protocol {protocol} not supported.",
                )
            rule["protocol"] = int(protocol)
        else:
            rule["protocol"] = name
    for field, key in (("port_range_min", "portRangeMin"), ("port_range_max", "portRangeMax")):
        value = body.get(field)
        if value is not None:
            try:
                rule[key] = int(value)
            except (TypeError, ValueError):
                raise NeutronFault(400, "HTTPBadRequest", f"Invalid input for {field}.") from None
    if body.get("remote_ip_prefix") and body.get("remote_group_id"):
        raise NeutronFault(
            400,
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
            "Only remote_ip_prefix or remote_group_id may be provided.",
        )
    if body.get("remote_ip_prefix"):
        rule["remoteCidr"] = body["remote_ip_prefix"]
    if body.get("remote_group_id"):
        names = {v: k for k, v in _uids(groups, project).items()}
        remote = str(body["remote_group_id"])
        if remote not in names:
            raise NeutronFault(
                404, "SecurityGroupNotFound", f"Security group {remote} does not exist"
            )
        rule["remoteGroup"] = names[remote]
    return rule


async def create_rule(request: web.Request) -> web.Response:
    may_write(request)
    body = await body_of(request, "security_group_rule")
    group = await _group(request, str(body.get("security_group_id", "")))
    if not sees(request, group):
        raise NeutronFault(404, "SecurityGroupNotFound", "Security group not found")
    groups = await _groups(request)
    rule = _rule(body, groups, group["metadata"]["project"])
    await quotas.check(request, group["metadata"]["project"], "security_group_rule")
    updated, stored, _ = await netops.add_rule(store_of(request), group, rule)
    view = rule_view(
        updated, stored, await Projects.read(request), _uids(groups, group["metadata"]["project"])
    )
    return one("security_group_rule", view, 201)


async def delete_rule(request: web.Request) -> web.Response:
    may_write(request)
    rid = request.match_info["id"]
    project = None if is_admin(request) else caller(request).project
    try:
        group, _rule_found = await netops.rule_by_id(store_of(request), rid, project)
    except NotFound:
        raise NeutronFault(
            404, "SecurityGroupRuleNotFound", f"Security group rule {rid} does not exist"
        ) from None
    await netops.delete_rule(store_of(request), group, rid)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2.0/security-groups", list_groups)
    r.add_post("/v2.0/security-groups", create_group)
    r.add_get("/v2.0/security-groups/{id}", show_group)
    r.add_put("/v2.0/security-groups/{id}", update_group)
    r.add_delete("/v2.0/security-groups/{id}", delete_group)
    r.add_get("/v2.0/security-group-rules", list_rules)
    r.add_post("/v2.0/security-group-rules", create_rule)
    r.add_get("/v2.0/security-group-rules/{id}", show_rule)
    r.add_delete("/v2.0/security-group-rules/{id}", delete_rule)
