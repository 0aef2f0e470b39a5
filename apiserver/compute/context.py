"""What every Compute handler reads from its request: the caller, the store, the base URL.

Owns: the request and app keys the Compute sub-app shares with its handlers.

Must never: hand a handler a caller whose token did not check.
"""

from __future__ import annotations

from aiohttp import web

from apiserver.tokens import Token
from state.store import Store

STORE = web.AppKey("compute_store", Store)
CALLER = web.RequestKey("compute_caller", Token)


def store_of(request: web.Request) -> Store:
    return request.app[STORE]


def caller(request: web.Request) -> Token:
    return request[CALLER]


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"
