"""The Neutron v2.0 subset's application (``/network``): versions, extensions, auth, faults.

Owns: checking the token of every request but the version documents, the
version and extension documents clients read first, and turning typed errors
into Neutron's error body (a 404 of a kind the handler did not name becomes
Neutron's ``NotFound``; conflicts ``Conflict``; refused input ``BadRequest``;
a member's subnet over a special-purpose block ``InvalidInput``, as Neutron's
for a loopback or multicast subnet).

Must never: answer a request whose token does not hold.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver import netops
from apiserver.network import floating_ips, networks, quotas, security_groups
from apiserver.network.common import CALLER, STORE, NeutronFault, render
from apiserver.tokens import TokenChecker
from apiserver.urls import base_url
from state.errors import DesiredError, Invalid
from state.store import Store

#: (alias, name) of the extensions this subset has, for clients that look before asking
EXTENSIONS = (
    ("security-group", "security-group"),
    ("external-net", "Neutron external network"),
    ("standard-attr-revisions", "Resource revision numbers"),
    ("standard-attr-timestamp", "Resource timestamps"),
    ("port-security", "Port Security"),
    ("quotas", "Quota management support"),
    ("quota_details", "Quota details management support"),
    ("binding", "Port Binding"),
)
#: (resource, its collection's path)
RESOURCES = (
    ("network", "networks"),
    ("subnet", "subnets"),
    ("port", "ports"),
    ("security_group", "security-groups"),
    ("security_group_rule", "security-group-rules"),
    ("floatingip", "floatingips"),
)
_OPEN = {"", "/"}
_KINDS = {400: "BadRequest", 403: "PolicyNotAuthorized", 404: "NotFound", 409: "Conflict"}


async def versions(request: web.Request) -> web.Response:
    href = f"{base_url(request)}/network/v2.0/"
    return web.json_response(
        {
            "versions": [
                {"id": "v2.0", "status": "CURRENT", "links": [{"href": href, "rel": "self"}]}
            ]
        }
    )


async def resources(request: web.Request) -> web.Response:
    base = f"{base_url(request)}/network/v2.0"
    return web.json_response(
        {
            "resources": [
                {
                    "name": name,
                    "collection": path,
                    "links": [{"href": f"{base}/{path}", "rel": "self"}],
                }
                for name, path in RESOURCES
            ]
        }
    )


async def extensions(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "extensions": [
                {
                    "alias": alias,
                    "name": name,
                    "description": name,
                    "updated": "2026-01-01T00:00:00-00:00",
                    "links": [],
                }
                for alias, name in EXTENSIONS
            ]
        }
    )


def _middleware(tokens: TokenChecker) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            if request.path.removeprefix("/network") not in _OPEN:
                token = await tokens.check(request.headers.get("X-Auth-Token", ""))
                if token is None:
                    raise NeutronFault(401, "Unauthorized", "Authentication required")
                request[CALLER] = token
            return await handler(request)
        except NeutronFault as fault:
            return render(fault)
        except netops.SpecialBlock as exc:
            return render(
                NeutronFault(400, "InvalidInput", f"Invalid input for operation: {exc.message}.")
            )
        except Invalid as exc:
            return render(
                NeutronFault(400, "HTTPBadRequest", f"Invalid input for operation: {exc.message}")
            )
        except DesiredError as exc:
            return render(NeutronFault(exc.status, _KINDS.get(exc.status, exc.reason), exc.message))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return render(NeutronFault(exc.status, _KINDS.get(exc.status, "HTTPError"), exc.reason))

    return middleware


def make_app(store: Store, tokens: TokenChecker) -> web.Application:
    app = web.Application(middlewares=[_middleware(tokens)])
    app[STORE] = store
    app.router.add_get("", versions)
    app.router.add_get("/", versions)
    for path in ("/v2.0", "/v2.0/"):
        app.router.add_get(path, resources)
    app.router.add_get("/v2.0/extensions", extensions)
    networks.add_routes(app)
    security_groups.add_routes(app)
    floating_ips.add_routes(app)
    quotas.add_routes(app)
    return app
