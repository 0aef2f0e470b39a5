"""Image members: a shared image's owner shares it with other projects, which accept it.

Owns: ``POST``/``GET /image/v2/images/{id}/members`` and ``GET``/``PUT``/``DELETE
/image/v2/images/{id}/members/{member}``, over the ``members`` of an Image's spec
(each a project's Keystone id and its answer: ``pending``, ``accepted`` or
``rejected``). The owner (a member of the image's project, or an admin) adds
and removes members and sees them all; a member sees its own entry and alone
answers for itself. What members see of the image is ``apiserver.images``'
(``sees``, ``member_status``).

Must never: let a project answer for another, or the owner answer for a member;
give members to an image that is not ``shared``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.images import CALLER, STORE, ImageFault, find, may_change, sees_all
from apiserver.request_text import decode
from apiserver.tokens import Token
from state.envelope import Obj, now
from state.errors import Conflict
from state.validation import validate

#: Glance's ``image_member_quota``
MAX_MEMBERS = 128
STATUSES = ("pending", "accepted", "rejected")


def member_view(image: Obj, member: dict[str, Any]) -> dict[str, Any]:
    return {
        "image_id": image["metadata"]["uid"],
        "member_id": member["projectId"],
        "status": member["status"],
        "created_at": member.get("createdAt", ""),
        "updated_at": member.get("updatedAt", ""),
        "schema": "/v2/schemas/member",
    }


def _members(image: Obj) -> list[dict[str, Any]]:
    return list(image["spec"].get("members") or [])


def _shared(image: Obj) -> None:
    if image["spec"].get("visibility") != "shared":
        visibility = image["spec"].get("visibility", "public")
        raise ImageFault(403, f"Only shared images have members; this one is {visibility}.")


def _seen(token: Token, image: Obj) -> list[dict[str, Any]]:
    """The members the caller sees: all of them for the owner, its own entry else."""
    if may_change(token, image) or sees_all(token):
        return _members(image)
    return [m for m in _members(image) if m["projectId"] == token.project_id]


def _one(token: Token, image: Obj, member_id: str) -> dict[str, Any]:
    for member in _seen(token, image):
        if member["projectId"] == member_id:
            return member
    raise ImageFault(404, f"{member_id} is not a member of image {image['metadata']['uid']}")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await decode(await request.read())
    except ValueError:
        raise ImageFault(400, "Malformed JSON in request body.") from None
    if not isinstance(body, dict):
        raise ImageFault(400, "Malformed JSON in request body.")
    return body


async def _store(request: web.Request, image: Obj, members: list[dict[str, Any]]) -> None:
    spec = {k: v for k, v in image["spec"].items() if k != "members"}
    if members:
        spec["members"] = members
    try:
        await request.app[STORE].update(validate(dict(image, spec=spec)), current=image)
    except Conflict as exc:
        raise ImageFault(409, exc.message) from None


async def add_member(request: web.Request) -> web.Response:
    token, image = request[CALLER], await find(request)
    body = await _body(request)
    member_id = body.get("member")
    if not isinstance(member_id, str) or not 0 < len(member_id) <= 255:
        raise ImageFault(400, "member must be a project id")
    if not may_change(token, image):
        raise ImageFault(403, "Only the image's owner may share it.")
    _shared(image)
    members = _members(image)
    if any(m["projectId"] == member_id for m in members):
        raise ImageFault(409, f"Member {member_id} already has membership.")
    if len(members) >= MAX_MEMBERS:
        raise ImageFault(413, f"Maximum number of image members ({MAX_MEMBERS}) exceeded.")
    stamp = now()
    member = {"projectId": member_id, "status": "pending", "createdAt": stamp, "updatedAt": stamp}
    await _store(request, image, [*members, member])
    return web.json_response(member_view(image, member))


async def list_members(request: web.Request) -> web.Response:
    token, image = request[CALLER], await find(request)
    _shared(image)
    members = [member_view(image, m) for m in _seen(token, image)]
    return web.json_response({"members": members, "schema": "/v2/schemas/members"})


async def show_member(request: web.Request) -> web.Response:
    token, image = request[CALLER], await find(request)
    _shared(image)
    return web.json_response(member_view(image, _one(token, image, request.match_info["member"])))


async def answer(request: web.Request) -> web.Response:
    """A member's answer to the sharing: only that member's project gives it."""
    token, image = request[CALLER], await find(request)
    member_id = request.match_info["member"]
    status = (await _body(request)).get("status")
    _shared(image)
    member = _one(token, image, member_id)
    if token.project_id != member_id:
        raise ImageFault(403, "Only the member itself may accept or reject a shared image.")
    if status not in STATUSES:
        raise ImageFault(400, f"Invalid status {status!r}: one of {', '.join(STATUSES)}")
    changed = {**member, "status": status, "updatedAt": now()}
    members = [changed if m is member else m for m in _members(image)]
    await _store(request, image, members)
    return web.json_response(member_view(image, changed))


async def remove_member(request: web.Request) -> web.Response:
    token, image = request[CALLER], await find(request)
    member_id = request.match_info["member"]
    _shared(image)
    _one(token, image, member_id)
    if not may_change(token, image):
        raise ImageFault(403, "Only the image's owner may remove its members.")
    await _store(request, image, [m for m in _members(image) if m["projectId"] != member_id])
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v2/images/{image_id}/members", add_member)
    app.router.add_get("/v2/images/{image_id}/members", list_members)
    app.router.add_get("/v2/images/{image_id}/members/{member}", show_member)
    app.router.add_put("/v2/images/{image_id}/members/{member}", answer)
    app.router.add_delete("/v2/images/{image_id}/members/{member}", remove_member)
