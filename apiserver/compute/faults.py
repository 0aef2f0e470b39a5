"""Nova's fault bodies: ``{"<name>": {"code": N, "message": "..."}}``.

Owns: the ``ComputeFault`` error every Compute handler raises, the name of
each status (badRequest, itemNotFound, conflictingRequest, ...) and
rendering it.

Must never: let an error leave the Compute API in another format.
"""

from __future__ import annotations

from aiohttp import web

_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}


class ComputeFault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def render(fault: ComputeFault) -> web.Response:
    name = _NAMES.get(fault.code, "computeFault")
    return web.json_response(
        {name: {"code": fault.code, "message": fault.message}}, status=fault.code
    )
