"""Keystone's access rules kept at the door: a token of an application credential that
has access rules makes only the calls they allow.

Owns: the root middleware doing keystonemiddleware's part of it. For a request
with a token of this identity service (``X-Auth-Token``, or a bearer token)
that carries access rules (``apiserver.tokens.Token.access_rules``), the
service is the one the path is under (``/compute``: compute, ``/image``:
image, ``/network``: network, ``/identity``: identity; anything else: none),
the path is the rest of it (``/v2.1/servers/<id>/ips``), and unless a rule
allows that service, method and path (``state.access_rules.allows``) the
answer is keystonemiddleware's 401 in Keystone's error body.

Must never: let such a token reach a call no rule allows; judge anything else of
a token (each API checks it fully: signature, expiry, revocation, grants).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.identity import Identity
from apiserver.tokens import decode
from state.access_rules import allows

#: the service type of the APIs under each mount point
SERVICES = {
    "/compute": "compute",
    "/image": "image",
    "/network": "network",
    "/identity": "identity",
}


def service_of(path: str) -> tuple[str, str]:
    """The service type of a request path and the path below its mount point ("" and the
    path itself when it is under none)."""
    for mount, service in SERVICES.items():
        if path == mount or path.startswith(mount + "/"):
            return service, path[len(mount) :] or "/"
    return "", path


def guard(identity: Identity) -> Any:
    """The middleware, for ``identity``'s tokens."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        scheme, _, text = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            text = request.headers.get("X-Auth-Token", "")
        text = text.strip()
        if text and "." in text:
            token = decode(text, await identity.signing_key())
            if token is not None and token.access_rules:
                service, path = service_of(request.path)
                if not any(allows(r, service, request.method, path) for r in token.access_rules):
                    message = "The request you have made requires authentication."
                    return web.json_response(
                        {"error": {"code": 401, "title": "Unauthorized", "message": message}},
                        status=401,
                    )
        return await handler(request)

    return middleware
