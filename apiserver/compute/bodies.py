"""Compute API request bodies checked against their schemas before any handler runs.

Owns: which request body schema (``schemas/compute_requests.yaml``) each
route takes (an action's by the action's name), checking a body against it
at the request's microversion, and Nova's 400 for a body that breaks it
("Invalid input for field/attribute <field>. Value: <value>. <why>").

Must never: let a handler see a body its schema refuses.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import Version
from apiserver.request_text import decode
from schemas.requests import check_request, request_names

#: (method, route) -> the name of its body's schema
ROUTES = {
    ("POST", "/v2.1/servers"): "servers.create",
    ("PUT", "/v2.1/servers/{server_id}"): "servers.update",
    ("POST", "/v2.1/servers/{server_id}/metadata"): "metadata.update_all",
    ("PUT", "/v2.1/servers/{server_id}/metadata"): "metadata.update_all",
    ("PUT", "/v2.1/servers/{server_id}/metadata/{key}"): "metadata.item",
    ("POST", "/v2.1/images/{image_id}/metadata"): "metadata.update_all",
    ("PUT", "/v2.1/images/{image_id}/metadata"): "metadata.update_all",
    ("PUT", "/v2.1/images/{image_id}/metadata/{key}"): "metadata.item",
    ("PUT", "/v2.1/servers/{server_id}/tags"): "tags.update_all",
    ("POST", "/v2.1/os-keypairs"): "keypairs.create",
    ("POST", "/v2.1/os-server-groups"): "server_groups.create",
    ("PUT", "/v2.1/os-quota-sets/{project_id}"): "quota_sets.update",
    ("PUT", "/v2.1/os-quota-class-sets/{class_name}"): "quota_class_sets.update",
    ("POST", "/v2.1/flavors"): "flavors.create",
    ("POST", "/v2.1/flavors/{flavor_id}/os-extra_specs"): "flavors.extra_specs",
    ("PUT", "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}"): "flavors.extra_spec",
    ("POST", "/v2.1/os-aggregates"): "aggregates.create",
    ("PUT", "/v2.1/os-aggregates/{aggregate_id}"): "aggregates.update",
    ("PUT", "/v2.1/os-services/{action}"): "services.update",
    ("PUT", "/v2.1/os-hosts/{host_name}"): "hosts.update",
    ("POST", "/v2.1/os-security-groups"): "security_groups.create",
    ("PUT", "/v2.1/os-security-groups/{id}"): "security_groups.create",
    ("POST", "/v2.1/os-security-group-rules"): "security_group_rules.create",
    ("POST", "/v2.1/os-floating-ips"): "floating_ips.create",
}
#: action routes -> the prefix of their actions' schema names (``<prefix>.<action>``)
ACTIONS = {
    "/v2.1/servers/{server_id}/action": "servers.action",
    "/v2.1/flavors/{flavor_id}/action": "flavors.action",
    "/v2.1/os-aggregates/{aggregate_id}/action": "aggregates.action",
}


def route_of(request: web.Request) -> str | None:
    """The route the request matched, as the Compute app names it (``/v2.1/...``)."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return resource.canonical.removeprefix("/compute")


async def _body(request: web.Request) -> Any:
    try:
        return await decode(await request.read())
    except ValueError:
        raise ComputeFault(400, "Malformed request body") from None


async def check_body(request: web.Request, version: Version) -> None:
    """Nova's 400 when the request's body breaks its route's schema at ``version``."""
    route = route_of(request)
    if route is None:
        return
    name = ROUTES.get((request.method, route))
    if name is None and request.method == "POST" and route in ACTIONS:
        body = await _body(request)
        if not isinstance(body, dict) or len(body) != 1:
            raise ComputeFault(400, "There is either no action or more than one in the request")
        candidate = f"{ACTIONS[route]}.{next(iter(body))}"
        name = candidate if candidate in request_names() else None  # the handler's 400
    if name is None:
        return
    error = check_request(name, (version.major, version.minor), await _body(request))
    if error is None:
        return
    if not error.field:
        raise ComputeFault(400, error.message)
    raise ComputeFault(
        400,
        f"Invalid input for field/attribute {error.field}. Value: {error.value}. {error.message}",
    )
