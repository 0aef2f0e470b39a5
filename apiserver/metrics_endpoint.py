"""The API server's ``/metrics``: Prometheus text for admins alone.

Owns: the handler of ``GET /metrics`` on the API server's port, which
answers the text only to a caller with the admin role: the bootstrap token
(as the declarative API takes it: ``apiserver.admin_token``, rotated and
with its lifetime), or an identity token (as the Compute API checks it:
signature, expiry, revocation, its user and project as they are now) whose
roles include ``admin``; sent as ``Authorization: Bearer <token>``
(Prometheus' ``authorization``) or ``X-Auth-Token``. Without a token, or
with one that does not check, 401; with a good token without admin, 403;
both in the declarative API's Status form (``apiserver.errors``).

Must never: answer metrics to a caller without the admin role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from apiserver.admin_token import AdminToken
from apiserver.errors import render
from apiserver.tokens import TokenChecker
from state.errors import DesiredError, Forbidden, Unauthorized


def _token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        token = request.headers.get("X-Auth-Token", "")
    return token.strip()


def metrics_handler(
    text: Callable[[], bytes], admin: AdminToken, tokens: TokenChecker
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler of ``/metrics``: ``text()`` for admins; see the module docstring."""

    async def admitted(request: web.Request) -> None:
        token = _token(request)
        if not token:
            raise Unauthorized(
                "/metrics needs a token with the admin role: send 'Authorization: Bearer "
                "<token>' or 'X-Auth-Token'"
            )
        if await admin.accepts(token):
            return
        checked = await tokens.check(token)
        if checked is None:
            raise Unauthorized("the token is not valid")
        if "admin" not in checked.roles:
            raise Forbidden("/metrics is for the admin role; the token does not carry it")

    async def metrics(request: web.Request) -> web.Response:
        try:
            await admitted(request)
        except DesiredError as exc:
            return render(exc)
        return web.Response(body=text(), content_type="text/plain", charset="utf-8")

    return metrics
