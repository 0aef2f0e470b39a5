"""What every Compute handler reads from its request: the caller, the store, the policy.

Owns: the request and app keys the Compute sub-app shares with its handlers
(the store, the SQL views, the policy, the caller), and asking the policy
whether the caller may do an action (Nova's 403 when not); the base URL
comes from ``apiserver.urls``.

Must never: hand a handler a caller whose token did not check.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from apiserver.compute.create_batches import CreateBatches
from apiserver.compute.faults import ComputeFault
from apiserver.identity import keystone_id_of
from apiserver.image_data import ImageData
from apiserver.policy import Creds, Policy
from apiserver.request_text import decode
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
POLICY = web.AppKey("compute_policy", Policy)
#: the image service's stored data (absent when it stores none)
IMAGE_DATA = web.AppKey("compute_image_data", ImageData)
CALLER = web.RequestKey("compute_caller", Token)


def _creds(request: web.Request) -> Creds:
    token = caller(request)
    return Creds.of(token.user_id, token.project_id, token.roles)


def allowed(request: web.Request, rule: str, project_id: str | None = None) -> bool:
    """Whether the policy lets the caller do ``rule`` on a target of ``project_id`` (the
    caller's own project when not given)."""
    token = caller(request)
    target = {
        "project_id": token.project_id if project_id is None else project_id,
        "user_id": token.user_id,
    }
    return request.app[POLICY].allows(rule, _creds(request), target)


def authorize(request: web.Request, rule: str, project_id: str | None = None) -> None:
    """Nova's 403, naming the rule, unless the policy allows it (see ``allowed``)."""
    if not allowed(request, rule, project_id):
        raise ComputeFault(403, f"Policy doesn't allow {rule} to be performed.")


async def json_body(request: web.Request, key: str | None = None) -> dict[str, Any]:
    """The request's JSON object (Nova's 400 when it is none), or the object under ``key``
    in it."""
    try:
        body = await decode(await request.read())
    except ValueError:
        raise ComputeFault(400, "Malformed request body") from None
    if not isinstance(body, dict):
        raise ComputeFault(400, "Malformed request body")
    if key is None:
        return body
    inner = body.get(key)
    if not isinstance(inner, dict):
        raise ComputeFault(400, f"Invalid input for field/attribute {key}.")
    return inner


def own_project(request: web.Request, what: str) -> str:
    """The caller's project (Nova's 403 for a token scoped to none), for ``what``."""
    project = caller(request).project
    if not project:
        raise ComputeFault(403, f"a project-scoped token is needed for {what}")
    return project


async def project_ids(request: web.Request, names: Iterable[str]) -> dict[str, str]:
    """The Keystone ids of projects by their object names (a name SQL does not know
    stands for itself)."""
    names = set(names)
    uids = await request.app[VIEWS].uids_by_name({"Project": names})
    return {n: keystone_id_of(uids.get(("Project", "", n), n)) for n in names}


def store_of(request: web.Request) -> Store:
    return request.app[STORE]


def caller(request: web.Request) -> Token:
    return request[CALLER]
