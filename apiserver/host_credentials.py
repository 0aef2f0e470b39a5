"""Hosts' etcd credentials, issued through the declarative API: how a hostd joins.

Owns: ``POST /apis/v1/hosts/<host>/credentials`` (admin only): makes the
host's etcd role (``state.etcd_roles``: its own assignments, console
requests, host keys and Host object; instances' statuses, events) and user,
with a new password, and a client certificate from the cloud's CA; answers
them with the CA's certificate and etcd's endpoint, once (a second request
makes a new password and certificate, and the first password stops working).

Must never: issue a credential to a non-admin, for a name that is not a host
name or that names simulated hosts (``<host>-sim-<n>``, covered by ``<host>``'s),
or keep the key or password it answers.
"""

from __future__ import annotations

import re
import secrets

from aiohttp import web

from apiserver.auth import PRINCIPAL
from state import etcd_auth, etcd_roles
from state.errors import BadRequest, Forbidden, NotFound
from state.etcd import EtcdClient
from state.etcd_tls import Authority

#: a host name as hostd registers it (RFC 1123 labels, dots allowed)
_HOST = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
ISSUER = web.AppKey("host_issuer", Authority)
ETCD = web.AppKey("host_issuer_etcd", EtcdClient)


def add_routes(app: web.Application, etcd: EtcdClient, issuer: Authority | None) -> None:
    """Serves hosts' credentials on ``app`` (the declarative API) when ``issuer`` (the CA
    etcd trusts) is given; ``etcd`` must be a client of etcd's root."""
    if issuer is None:
        return
    app[ISSUER] = issuer
    app[ETCD] = etcd
    app.router.add_post("/hosts/{name}/credentials", issue)


async def issue(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    if "admin" not in principal.roles:
        raise Forbidden("only an admin may issue a host's etcd credentials")
    host = request.match_info["name"]
    if len(host) > 253 or not _HOST.fullmatch(host):
        raise BadRequest(f"{host!r} is not a host name (letters, digits, '-' and '.')")
    if etcd_roles.SIMULATED in host:
        raise BadRequest(
            f"host names containing {etcd_roles.SIMULATED!r} are simulated hosts' "
            f"(covered by the credential of the host they are named after)"
        )
    etcd, issuer = request.app[ETCD], request.app[ISSUER]
    if etcd.credentials is None:
        raise NotFound("this API server's etcd has no TLS: it issues no credentials")
    user, password = etcd_roles.hostd_user(host), secrets.token_urlsafe(24)
    cert, key = issuer.issue(user)
    await etcd_auth.ensure_role(etcd, user, etcd_roles.hostd_grants(host))
    await etcd_auth.ensure_user(etcd, user, password, [user])
    return web.json_response(
        {
            "host": host,
            "etcd": {
                "endpoints": [etcd.url],
                "user": user,
                "password": password,
                "ca": issuer.cert_file.read_text(),
                "cert": cert.decode(),
                "key": key.decode(),
            },
        },
        status=201,
    )
