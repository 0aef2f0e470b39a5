"""Nova's network proxies: os-security-groups (and rules), os-floating-ips, their pools,
os-networks, os-tenant-networks, and the server actions that add and remove groups and
floating IPs.

Nova removed the proxy resources at 2.36 (404 from there on; the floating IP
actions at 2.44); ``addSecurityGroup``, ``removeSecurityGroup`` and a
server's ``os-security-groups`` remain. Each works through ``netops``, on the
same objects the Neutron subset shows.

Owns: Nova's request and answer shapes of these, their policy rules' names
(``policies``), and the 400s Nova's proxy answered where Neutron says 409 (a
duplicate rule, deleting the default group or one in use).

Must never: let a caller who is not an admin see or change another project's
groups, floating IPs or networks.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from aiohttp import web

from apiserver import netops
from apiserver.compute.context import (
    allowed,
    authorize,
    json_body,
    own_project,
    project_ids,
    store_of,
)
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.names import is_object_name, object_name_for
from state import ipam
from state.envelope import Obj, Ref
from state.errors import BadRequest, Conflict, NotFound

#: server actions of this module: their policy rules and the version Nova removed them at
ACTIONS = {
    "addSecurityGroup": ("os_compute_api:os-security-groups:add", None),
    "removeSecurityGroup": ("os_compute_api:os-security-groups:remove", None),
    "addFloatingIp": ("os_compute_api:os-floating-ips:add", "2.44"),
    "removeFloatingIp": ("os_compute_api:os-floating-ips:remove", "2.44"),
}


def _proxy(request: web.Request) -> None:
    """Nova's 404 for the proxy resources from 2.36 on."""
    if since(request, "2.36"):
        raise ComputeFault(404, "The resource could not be found.")


def _scope(request: web.Request) -> str | None:
    """The project whose objects the caller sees: None for an admin (all)."""
    return (
        None if allowed(request, "context_is_admin") else own_project(request, "network resources")
    )


# --- security groups ---------------------------------------------------------------------


def _rule_view(
    group: Obj, rule: dict[str, Any], names: dict[str, Obj], ids: dict[str, str]
) -> dict[str, Any]:
    protocol = rule.get("protocol", "any")
    low = rule.get("portRangeMin")
    high = rule.get("portRangeMax", low)
    if protocol == "icmp":
        low, high = (
            (-1 if low is None else low),
            (-1 if rule.get("portRangeMax") is None else rule["portRangeMax"]),
        )
    remote = names.get(rule.get("remoteGroup", ""))
    return {
        "id": netops.rule_id(group, rule),
        "parent_group_id": group["metadata"]["uid"],
        "ip_protocol": None if protocol == "any" else str(protocol),
        "from_port": low,
        "to_port": high,
        "ip_range": {"cidr": rule["remoteCidr"]}
        if rule.get("remoteCidr")
        else ({} if remote else {"cidr": "0.0.0.0/0"}),
        "group": {"name": remote["metadata"]["name"], "tenant_id": remote["metadata"]["project"]}
        if remote
        else {},
    }


def _group_view(group: Obj, names: dict[str, Obj], ids: dict[str, str]) -> dict[str, Any]:
    """Nova's group: its ingress rules (Nova's groups had no others); ``ids``: Keystone
    ids of projects."""
    ingress = [r for r in group["spec"].get("rules", []) if r["direction"] == "ingress"]
    return {
        "id": group["metadata"]["uid"],
        "name": group["spec"].get("displayName") or group["metadata"]["name"],
        "description": group["spec"].get("description", ""),
        "tenant_id": ids.get(group["metadata"]["project"], group["metadata"]["project"]),
        "rules": [_rule_view(group, r, names, ids) for r in ingress],
    }


async def _ids(request: web.Request, objs: list[Obj]) -> dict[str, str]:
    return await project_ids(request, {o["metadata"]["project"] for o in objs})


async def _groups(request: web.Request) -> list[Obj]:
    store = store_of(request)
    project = _scope(request)
    if project is not None:
        await netops.ensure_default_group(store, project)
    return [
        g
        for g in (await store.list("SecurityGroup", project)).items
        if not g["metadata"].get("deletionTimestamp")
    ]


def _names(groups: list[Obj], project: str) -> dict[str, Obj]:
    return {g["metadata"]["name"]: g for g in groups if g["metadata"]["project"] == project}


async def _group(request: web.Request, ident: str) -> Obj:
    for g in await _groups(request):
        if g["metadata"]["uid"] == ident:
            return g
    raise ComputeFault(404, f"Security group {ident} not found.")


async def list_groups(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-security-groups:get")
    groups = await _groups(request)
    ids = await _ids(request, groups)
    views = [_group_view(g, _names(groups, g["metadata"]["project"]), ids) for g in groups]
    return web.json_response({"security_groups": views})


async def show_group(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-security-groups:show")
    group = await _group(request, request.match_info["id"])
    groups = await _groups(request)
    names = _names(groups, group["metadata"]["project"])
    return web.json_response(
        {"security_group": _group_view(group, names, await _ids(request, groups))}
    )


def _group_name(value: Any) -> str:
    """A group's name as Nova with Neutron takes it: printable text of 1 to 255
    characters, white space at its ends kept."""
    if not isinstance(value, str) or not 0 < len(value) <= 255 or not value.isprintable():
        raise ComputeFault(400, "Invalid input for field/attribute name.")
    return value


async def create_group(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-security-groups:create")
    body = await json_body(request, "security_group")
    shown = _group_name(body.get("name"))
    project = own_project(request, "security groups")
    name = object_name_for(shown, "sg")
    spec: dict[str, Any] = {"description": str(body.get("description") or ""), "rules": []}
    if not is_object_name(shown):
        spec["displayName"] = shown
    store = store_of(request)
    if await store.get_or_none(Ref("SecurityGroup", project, name)) is not None:
        raise ComputeFault(400, f"Security group {shown} already exists")
    made = await netops.create_group(store, project, name, spec)
    return web.json_response({"security_group": _group_view(made, {}, await _ids(request, [made]))})


async def update_group(request: web.Request) -> web.Response:
    """A new name (``spec.displayName``: the object keeps its name, which rules and
    servers refer to) and description; the default group keeps its name."""
    _proxy(request)
    authorize(request, "os_compute_api:os-security-groups:update")
    body = await json_body(request, "security_group")
    group = await _group(request, request.match_info["id"])
    shown, meta = _group_name(body.get("name")), group["metadata"]
    if meta["name"] == netops.DEFAULT_GROUP and shown != netops.DEFAULT_GROUP:
        raise ComputeFault(400, "Updating default security group not allowed.")
    groups = await _groups(request)
    for other in _names(groups, meta["project"]).values():
        taken = other["spec"].get("displayName") or other["metadata"]["name"]
        if other["metadata"]["uid"] != meta["uid"] and taken == shown:
            raise ComputeFault(400, f"Security group {shown} already exists")
    spec = {k: v for k, v in group["spec"].items() if k != "displayName"}
    spec["description"] = str(body.get("description") or "")
    if shown != meta["name"]:
        spec["displayName"] = shown
    try:
        updated = await store_of(request).update(dict(group, spec=spec))
    except Conflict:
        raise ComputeFault(409, "The security group changed meanwhile; try again") from None
    assert updated is not None
    names = _names(groups, meta["project"])
    return web.json_response(
        {"security_group": _group_view(updated, names, await _ids(request, [updated]))}
    )


async def delete_group(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-security-groups:delete")
    group = await _group(request, request.match_info["id"])
    try:
        await netops.delete_group(store_of(request), group)
    except netops.GroupNotDeletable as exc:
        raise ComputeFault(400, exc.message) from None
    return web.Response(status=202)


async def create_rule(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-security-groups:rule:create")
    body = await json_body(request, "security_group_rule")
    group = await _group(request, str(body.get("parent_group_id", "")))
    rule: dict[str, Any] = {"direction": "ingress"}
    protocol = str(body.get("ip_protocol") or "").lower()
    if protocol not in ("tcp", "udp", "icmp"):
        raise ComputeFault(400, f"Invalid IP protocol {body.get('ip_protocol')}.")
    rule["protocol"] = protocol
    try:
        low, high = int(body["from_port"]), int(body["to_port"])
    except (KeyError, TypeError, ValueError):
        raise ComputeFault(
            400, "Invalid port range: from_port and to_port must be integers."
        ) from None
    if protocol == "icmp":
        if low != -1:
            rule["portRangeMin"] = low
            if high != -1:
                rule["portRangeMax"] = high
    else:
        rule.update(portRangeMin=low, portRangeMax=high)
    groups = await _groups(request)
    if body.get("group_id"):
        remote = next((g for g in groups if g["metadata"]["uid"] == body["group_id"]), None)
        if remote is None:
            raise ComputeFault(400, f"Security group {body['group_id']} not found.")
        rule["remoteGroup"] = remote["metadata"]["name"]
    elif body.get("cidr"):
        rule["remoteCidr"] = str(body["cidr"])
    try:
        updated, stored, _ = await netops.add_rule(store_of(request), group, rule)
    except netops.RuleExists:
        parent = group["metadata"]["uid"]
        raise ComputeFault(400, f"This rule already exists in group {parent}") from None
    names = _names(groups, group["metadata"]["project"])
    view = _rule_view(updated, stored, names, await _ids(request, groups))
    return web.json_response({"security_group_rule": view})


async def delete_rule(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-security-groups:rule:delete")
    rid = request.match_info["id"]
    try:
        group, _ = await netops.rule_by_id(store_of(request), rid, _scope(request))
    except NotFound:
        raise ComputeFault(404, f"Security group rule {rid} not found.") from None
    await netops.delete_rule(store_of(request), group, rid)
    return web.Response(status=202)


async def server_groups(request: web.Request, inst: Obj) -> web.Response:
    groups = await _groups(request)
    names = _names(groups, inst["metadata"]["project"])
    ids = await _ids(request, groups)
    used = inst["spec"].get("securityGroups") or [netops.DEFAULT_GROUP]
    views = [_group_view(names[n], names, ids) for n in used if n in names]
    return web.json_response({"security_groups": views})


# --- floating IPs, pools, networks ----------------------------------------------------------


async def _pools(request: web.Request) -> list[Obj]:
    return [n for n in (await store_of(request).list("Network")).items if n["spec"].get("external")]


async def _fip_view(request: web.Request, fip: Obj) -> dict[str, Any]:
    found = await netops.target(store_of(request), fip)
    return {
        "id": fip["metadata"]["uid"],
        "ip": ipam.floating_address(fip),
        "pool": fip["spec"]["pool"],
        "fixed_ip": found[0]["status"]["ports"][found[1]]["address"] if found else None,
        "instance_id": found[0]["metadata"]["uid"] if found else None,
    }


async def _fips(request: web.Request) -> list[Obj]:
    return [
        f
        for f in (await store_of(request).list("FloatingIP", _scope(request))).items
        if not f["metadata"].get("deletionTimestamp")
    ]


async def _fip(request: web.Request, ident: str, by: str = "uid") -> Obj:
    for f in await _fips(request):
        if (f["metadata"]["uid"] if by == "uid" else f["spec"].get("address")) == ident:
            return f
    raise ComputeFault(404, f"Floating IP {ident} could not be found.")


async def list_pools(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-floating-ip-pools:list")
    return web.json_response(
        {"floating_ip_pools": [{"name": n["metadata"]["name"]} for n in await _pools(request)]}
    )


async def list_fips(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-floating-ips:list")
    return web.json_response(
        {"floating_ips": [await _fip_view(request, f) for f in await _fips(request)]}
    )


async def show_fip(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-floating-ips:show")
    fip = await _fip(request, request.match_info["id"])
    return web.json_response({"floating_ip": await _fip_view(request, fip)})


async def create_fip(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-floating-ips:create")
    raw = await request.read()  # (the body check has read it: read() keeps it)
    body = json.loads(raw) if raw.strip() else None  # null or none: the first pool
    pools = await _pools(request)
    wanted = (body or {}).get("pool") or (pools[0]["metadata"]["name"] if pools else None)
    pool = next((p for p in pools if p["metadata"]["name"] == wanted), None)
    if pool is None:
        raise ComputeFault(404, f"Floating IP pool not found: {wanted}")
    try:
        fip = await netops.create_floating_ip(
            store_of(request), own_project(request, "floating IPs"), pool
        )
    except ipam.PoolExhausted:
        raise ComputeFault(404, f"No more floating IPs in pool {wanted}.") from None
    return web.json_response({"floating_ip": await _fip_view(request, fip)})


async def delete_fip(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-floating-ips:delete")
    fip = await _fip(request, request.match_info["id"])
    await store_of(request).delete(
        Ref("FloatingIP", fip["metadata"]["project"], fip["metadata"]["name"])
    )
    return web.Response(status=202)


#: the fields of Nova's network view, each null unless desired has a value for it
_NETWORK_FIELDS = (
    "bridge",
    "bridge_interface",
    "broadcast",
    "cidr",
    "cidr_v6",
    "created_at",
    "deleted",
    "deleted_at",
    "dhcp_server",
    "dhcp_start",
    "dns1",
    "dns2",
    "enable_dhcp",
    "gateway",
    "gateway_v6",
    "host",
    "id",
    "injected",
    "label",
    "mtu",
    "multi_host",
    "netmask",
    "netmask_v6",
    "priority",
    "project_id",
    "rxtx_base",
    "share_address",
    "updated_at",
    "vlan",
    "vpn_private_address",
    "vpn_public_address",
    "vpn_public_port",
)
#: what callers who are not admins see of it
_MEMBER_FIELDS = (
    "id",
    "cidr",
    "netmask",
    "gateway",
    "broadcast",
    "dns1",
    "dns2",
    "cidr_v6",
    "gateway_v6",
    "label",
    "netmask_v6",
)


def _network_view(request: web.Request, net: Obj, ids: dict[str, str]) -> dict[str, Any]:
    spec = net["spec"]
    view: dict[str, Any] = dict.fromkeys(_NETWORK_FIELDS)
    view.update(id=net["metadata"]["uid"], label=spec.get("displayName") or net["metadata"]["name"])
    if spec.get("cidr"):
        cidr = ipaddress.IPv4Network(spec["cidr"], strict=False)
        first = ipam.Pool.of(spec).first()
        dns = [*spec.get("dnsServers", []), None, None]
        view.update(
            cidr=str(cidr),
            netmask=str(cidr.netmask),
            broadcast=str(cidr.broadcast_address),
            gateway=str(ipam.gateway(spec)),
            dhcp_server=str(ipam.gateway(spec)),
            dhcp_start=str(first) if first else None,
            dns1=dns[0],
            dns2=dns[1],
            enable_dhcp=True,
        )
    view.update(
        bridge=ipam.bridge_name(net),
        vlan=(spec.get("vlan") or {}).get("id"),
        bridge_interface=(spec.get("vlan") or {}).get("interface"),
        project_id=ids.get(net["metadata"]["project"]),
        mtu=1500,
        multi_host=True,
        created_at=net["metadata"].get("creationTimestamp"),
        deleted=False,
    )
    if allowed(request, "context_is_admin"):
        return view
    return {k: view[k] for k in _MEMBER_FIELDS}


async def _networks(request: web.Request) -> list[Obj]:
    project = _scope(request)
    return [
        n
        for n in (await store_of(request).list("Network")).items
        if project is None or n["metadata"]["project"] == project or n["spec"].get("shared")
    ]


async def list_networks(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-networks:list")
    nets = await _networks(request)
    ids = await _ids(request, nets)
    return web.json_response({"networks": [_network_view(request, n, ids) for n in nets]})


async def show_network(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-networks:view")
    for n in await _networks(request):
        if n["metadata"]["uid"] == request.match_info["id"]:
            return web.json_response(
                {"network": _network_view(request, n, await _ids(request, [n]))}
            )
    raise ComputeFault(404, f"Network {request.match_info['id']} could not be found.")


def _tenant_network_view(net: Obj) -> dict[str, Any]:
    return {
        "id": net["metadata"]["uid"],
        "label": net["spec"].get("displayName") or net["metadata"]["name"],
        "cidr": net["spec"].get("cidr"),
    }


async def list_tenant_networks(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-tenant-networks:list")
    nets = await _networks(request)
    return web.json_response({"networks": [_tenant_network_view(n) for n in nets]})


async def show_tenant_network(request: web.Request) -> web.Response:
    _proxy(request)
    authorize(request, "os_compute_api:os-tenant-networks:show")
    for n in await _networks(request):
        if n["metadata"]["uid"] == request.match_info["id"]:
            return web.json_response({"network": _tenant_network_view(n)})
    raise ComputeFault(404, "Network not found")


# --- server actions ---------------------------------------------------------------------------


async def server_action(request: web.Request, inst: Obj, name: str, arg: Any) -> web.Response:
    """One of ``ACTIONS`` on ``inst`` (its policy is checked by the caller)."""
    removed_at = ACTIONS[name][1]
    if removed_at and since(request, removed_at):
        raise ComputeFault(400, f"There is no such action: {name}")
    if not isinstance(arg, dict):
        raise ComputeFault(400, f"Invalid input for field/attribute {name}.")
    store = store_of(request)
    project = inst["metadata"]["project"]
    if name in ("addSecurityGroup", "removeSecurityGroup"):
        if not isinstance(arg.get("name"), str) or not arg["name"]:
            raise ComputeFault(400, "Invalid input for field/attribute name.")
        try:
            (group,) = await netops.group_names(store, project, [arg["name"]])
        except BadRequest:
            raise ComputeFault(
                404, f"Security group {arg['name']} not found for project {project}."
            ) from None
        if name == "addSecurityGroup":
            await netops.set_groups(store, inst, add=group)
        else:
            await netops.set_groups(store, inst, remove=group)
        return web.Response(status=202)
    address = arg.get("address")
    fip = await _fip(request, str(address), by="address")
    if name == "addFloatingIp":
        await netops.associate(store, fip, inst, arg.get("fixed_address"))
    else:
        if fip["spec"].get("instance") != inst["metadata"]["name"]:
            raise ComputeFault(
                409,
                f"Floating IP {address} is not associated with instance {inst['metadata']['uid']}.",
            )
        await netops.associate(store, fip, None)
    return web.Response(status=202)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/v2.1/os-security-groups", list_groups)
    r.add_post("/v2.1/os-security-groups", create_group)
    r.add_get("/v2.1/os-security-groups/{id}", show_group)
    r.add_put("/v2.1/os-security-groups/{id}", update_group)
    r.add_delete("/v2.1/os-security-groups/{id}", delete_group)
    r.add_post("/v2.1/os-security-group-rules", create_rule)
    r.add_delete("/v2.1/os-security-group-rules/{id}", delete_rule)
    r.add_get("/v2.1/os-floating-ip-pools", list_pools)
    r.add_get("/v2.1/os-floating-ips", list_fips)
    r.add_post("/v2.1/os-floating-ips", create_fip)
    r.add_get("/v2.1/os-floating-ips/{id}", show_fip)
    r.add_delete("/v2.1/os-floating-ips/{id}", delete_fip)
    r.add_get("/v2.1/os-networks", list_networks)
    r.add_get("/v2.1/os-networks/{id}", show_network)
    r.add_get("/v2.1/os-tenant-networks", list_tenant_networks)
    r.add_get("/v2.1/os-tenant-networks/{id}", show_tenant_network)
