"""Compute API server locks: the ``lock`` and ``unlock`` actions and the rule they set.

Owns: ``spec.locked`` and who locked it (the annotation ``desired/locked-by``:
``owner`` when a member of the server's project locked it, ``admin`` when
someone else did, as Nova's ``locked_by``); Nova's 409 "Instance <id> is
locked" for a change of a locked server by someone not an admin; and Nova's
rule that a lock taken by the other side is lifted only with
``os_compute_api:os-lock-server:unlock:unlock_override`` (admins).

Must never: let the owner lift an admin's lock without that rule.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.compute import servers
from apiserver.compute.context import allowed, authorize, caller, store_of
from apiserver.compute.faults import ComputeFault
from state.envelope import Obj
from state.errors import Conflict

#: who locked a server: ``owner`` (its project) or ``admin`` (anyone else)
LOCKED_BY_ANNOTATION = "desired/locked-by"


def unlocked(request: web.Request, inst: Obj) -> None:
    """Nova's 409 for a change of a locked server by someone not an admin."""
    if inst["spec"].get("locked") and not allowed(request, "context_is_admin"):
        raise ComputeFault(409, f"Instance {inst['metadata']['uid']} is locked")


def _side(request: web.Request, inst: Obj) -> str:
    """``owner`` for a caller of the server's project, else ``admin``."""
    return "owner" if caller(request).project == inst["metadata"]["project"] else "admin"


async def _write(request: web.Request, inst: Obj, by: str | None) -> Obj:
    annotations = dict(inst["metadata"].get("annotations") or {})
    annotations.pop(LOCKED_BY_ANNOTATION, None)
    if by is not None:
        annotations[LOCKED_BY_ANNOTATION] = by
    changed = dict(
        inst,
        metadata=dict(inst["metadata"], annotations=annotations),
        spec=dict(inst["spec"], locked=by is not None),
    )
    try:
        written = await store_of(request).update(changed)
    except Conflict:
        raise ComputeFault(409, "The server changed meanwhile; try again") from None
    assert written is not None
    return written


async def lock(request: web.Request, inst: Obj, arg: Any) -> web.Response:
    written = await _write(request, inst, _side(request, inst))
    return servers.with_request_id(web.Response(status=202), inst, written)


async def unlock(request: web.Request, inst: Obj, arg: Any) -> web.Response:
    by = (inst["metadata"].get("annotations") or {}).get(LOCKED_BY_ANNOTATION)
    if inst["spec"].get("locked") and by and by != _side(request, inst):
        authorize(request, "os_compute_api:os-lock-server:unlock:unlock_override")
    written = await _write(request, inst, None)
    return servers.with_request_id(web.Response(status=202), inst, written)


#: the actions of this module by name
ACTIONS = {"lock": lock, "unlock": unlock}
