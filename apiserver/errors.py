"""How the declarative API and desiredctl see errors: a Kubernetes-style Status.

Owns: rendering ``state.errors`` (and unexpected exceptions) as
``{"kind": "Status", "code", "reason", "message", "details"}`` responses,
once, in a middleware.

Must never: decide what is an error; handlers raise, this renders.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from state.errors import DesiredError, Invalid, Transient

log = logging.getLogger(__name__)


def status_body(
    code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "desired/v1",
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }
    if causes:
        body["details"] = {"causes": causes}
    return body


def render(exc: DesiredError) -> web.Response:
    causes = None
    if isinstance(exc, Invalid):
        causes = [{"field": e.path, "message": e.message} for e in exc.errors]
    headers = {"Retry-After": "1"} if isinstance(exc, Transient) else None
    return web.json_response(
        status_body(exc.status, exc.reason, exc.message, causes), status=exc.status, headers=headers
    )


@web.middleware
async def status_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except DesiredError as exc:
        return render(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            status_body(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason),
            status=exc.status,
        )
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return web.json_response(
            status_body(500, "InternalError", "internal error; see the server log"), status=500
        )
