"""Who is calling the declarative API: a token to a principal.

Owns: the ``Principal`` of a request and the middleware that makes it from
the token in ``Authorization: Bearer`` or ``X-Auth-Token``: the bootstrap
admin token (``apiserver.admin_token``), else an identity token, checked as
the Compute API checks it (signature, expiry, revocation, and that its user
still exists, is enabled and holds its roles); where the bootstrap token is
kept in the data dir (``bootstrap_token``, ``kept_secret``).

Must never: let a request without a valid token reach a handler.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from apiserver.admin_token import AdminToken
from apiserver.policy import IMPLIED
from apiserver.tokens import TokenChecker
from state.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    user: str
    #: the roles the token carries, with those they imply (admin -> member -> reader)
    roles: frozenset[str]
    #: the project the token is scoped to; None for the bootstrap token and tokens scoped
    #: to the whole cloud or to nothing
    project: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @staticmethod
    def of(user: str, roles: tuple[str, ...], project: str | None) -> Principal:
        expanded = {r.lower() for r in roles}
        for role in list(expanded):
            expanded.update(IMPLIED.get(role, ()))
        return Principal(user, frozenset(expanded), project or None)


PRINCIPAL = web.RequestKey("principal", Principal)
BOOTSTRAP = Principal(user="admin", roles=frozenset({"admin", "member", "reader"}))


def kept_secret(configured: str, path: Path) -> str:
    """The configured secret, else one made once and kept in ``path`` (mode 0600)."""
    if configured:
        return configured
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    made = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(made + "\n")
    return made


def admin_token_file(data_dir: Path) -> Path:
    return data_dir / "admin-token"


def bootstrap_token(configured: str, data_dir: Path) -> str:
    """The admin token: the configured one, else one kept in ``<data_dir>/admin-token``."""
    return kept_secret(configured, admin_token_file(data_dir))


def token_auth(admin: AdminToken, tokens: TokenChecker | None) -> Any:
    """A middleware that takes the bootstrap admin token or (with ``tokens``) an identity
    token, as a bearer token or ``X-Auth-Token``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            token = request.headers.get("X-Auth-Token", "")
        token = token.strip()
        if not token:
            raise Unauthorized(
                "authentication required: send 'Authorization: Bearer <token>' or 'X-Auth-Token'"
            )
        if await admin.accepts(token):
            request[PRINCIPAL] = BOOTSTRAP
        else:
            checked = await tokens.check(token) if tokens is not None else None
            if checked is None:
                raise Unauthorized("the token is not valid (or has expired, or was revoked)")
            request[PRINCIPAL] = Principal.of(checked.user, checked.roles, checked.project)
        return await handler(request)

    return middleware
