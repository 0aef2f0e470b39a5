"""The URLs the API server hands out, built from the request that asked.

Owns: the base URL (scheme and host as the client reached us), from which
catalogs, version documents and links are made.

Must never: invent a host the client did not use.
"""

from __future__ import annotations

from aiohttp import web


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"
