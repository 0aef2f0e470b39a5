"""Who is calling: bearer tokens to principals.

Owns: the ``Principal`` of a request and the middleware that refuses
anonymous calls. Until the identity service lands, the only token is the
bootstrap admin token from the config (or the data dir).

Must never: let a request without a valid token reach a handler.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from state.errors import Unauthorized


@dataclass(frozen=True)
class Principal:
    user: str
    roles: frozenset[str]
    #: the project the token is scoped to; None for a cluster-wide admin
    project: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


PRINCIPAL = web.RequestKey("principal", Principal)


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


def bootstrap_token(configured: str, data_dir: Path) -> str:
    """The admin token: the configured one, else one kept in ``<data_dir>/admin-token``."""
    return kept_secret(configured, data_dir / "admin-token")


def token_auth(admin_token: str) -> Any:
    """A middleware that accepts the admin token as a bearer token or ``X-Auth-Token``."""
    expected = admin_token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            token = request.headers.get("X-Auth-Token", "")
        if not token:
            raise Unauthorized(
                "authentication required: send 'Authorization: Bearer <token>' or 'X-Auth-Token'"
            )
        if not hmac.compare_digest(token.strip().encode(), expected):
            raise Unauthorized("the token is not valid")
        request[PRINCIPAL] = Principal(user="admin", roles=frozenset({"admin"}))
        return await handler(request)

    return middleware
