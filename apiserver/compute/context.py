"""What every Compute handler reads from its request: the caller, the store, the base URL.

Owns: the request and app keys the Compute sub-app shares with its handlers
(the store, the SQL views, the caller); the base URL comes from ``apiserver.urls``.

Must never: hand a handler a caller whose token did not check.
"""

from __future__ import annotations

from aiohttp import web

from apiserver.compute.create_batches import CreateBatches
from apiserver.compute.faults import ComputeFault
from apiserver.tokens import Token
from state.sql.views import ComputeViews
from state.store import Store

STORE = web.AppKey("compute_store", Store)
#: server creates, committed a project's batch at a time
CREATES = web.AppKey("compute_creates", CreateBatches)
#: the conductor's SQL views; absent when the API server has no SQL configured
VIEWS = web.AppKey("compute_views", ComputeViews)
#: the most servers one list answers (Nova's ``api.max_limit``)
MAX_LIMIT = web.AppKey("compute_max_limit", int)
CALLER = web.RequestKey("compute_caller", Token)


def require_admin(request: web.Request, rule: str) -> None:
    """Nova's 403 for a caller without the admin role, naming the policy rule."""
    if "admin" not in caller(request).roles:
        raise ComputeFault(403, f"Policy doesn't allow {rule} to be performed.")


def store_of(request: web.Request) -> Store:
    return request.app[STORE]


def caller(request: web.Request) -> Token:
    return request[CALLER]
