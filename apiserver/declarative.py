"""The declarative API under ``/apis/v1``: apply, get, list, watch, delete.

Owns: the HTTP face of the object store for ``desiredctl``, GitOps and
integrations. Paths::

    GET    /apis/v1/                                      kinds served
    POST   /apis/v1/apply[?dryRun=true]                   server-side apply of one object
    GET    /apis/v1/<plural>                              list (cluster kinds; all projects)
    GET    /apis/v1/projects/<project>/<plural>           list in one project
           ?labelSelector=&limit=&continue=               ... filtered and paged
           ?watch=true&resourceVersion=N                  ... or streamed events (NDJSON)
    POST   <collection>                                   create (409 if it exists)
    GET    <collection>/<name>                            one object
    PUT    <collection>/<name>                            replace; needs resourceVersion (409 if stale)
    DELETE <collection>/<name>                            delete (or mark deleting while finalizers remain)
    GET    <collection>/<name>/events                     events about the object

Who may do what is ``apiserver.declarative_access``'s to say, for every
request before it reads or writes anything; ``apiserver.auth`` says who
calls.

Must never: write an object that failed validation, or one its caller may not
write; stream an object of a project its caller may not read; or answer with
anything but an object, a list, an event stream or a Status.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from aiohttp import web

from apiserver.admin_token import AdminToken
from apiserver.auth import PRINCIPAL, token_auth
from apiserver.declarative_access import READ, WRITE, authorize, check_fields, guards_fields
from apiserver.errors import status_errors
from apiserver.kinds import KINDS, KindInfo, by_kind, by_plural, check_scope
from apiserver.request_text import decode, loads_json, loads_yaml
from apiserver.tokens import TokenChecker
from state import keys, selectors
from state.admission import admit, admit_delete
from state.apply import apply
from state.envelope import API_VERSION, Obj, Ref
from state.errors import BadRequest, FieldError, Invalid
from state.store import Store
from state.validation import validate
from state.watch import BOOKMARK, ObjectEvent, ObjectWatch, dumps_event

STORE = web.AppKey("store", Store)
#: streaming watch handlers, cancelled when the server shuts down
WATCHES = web.AppKey("watches", weakref.WeakSet[asyncio.Task[Any]])

#: seconds between bookmarks on a quiet watch stream
_HEARTBEAT = 10.0

_MAX_BODY = 4 * 1024 * 1024
#: the largest revision etcd has (an int64)
_MAX_REVISION = 2**63 - 1
_DIGITS = re.compile(r"[0-9]+")


async def _body(request: web.Request) -> Obj:
    raw = await request.read()
    if not raw:
        raise BadRequest("the request has no body")
    try:
        # a key given twice is refused, in YAML (as desiredctl does) and in JSON
        loads = loads_yaml if "yaml" in request.content_type else partial(loads_json, unique=True)
        data = await decode(raw, loads)
    except ValueError as exc:
        raise BadRequest(
            f"the body is not valid {'YAML' if 'yaml' in request.content_type else 'JSON'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be one object (a mapping)")
    return data


def _bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes", "all")


def _target(request: web.Request) -> tuple[KindInfo, str | None]:
    """The kind and project the URL names (the caller's rights still to be checked)."""
    info = by_plural(request.match_info["plural"])
    project = request.match_info.get("project")
    if project and info.scope == "cluster":
        raise BadRequest(f"{info.kind} is cluster-scoped: use /apis/v1/{info.plural}")
    return info, project


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


async def discovery(request: web.Request) -> web.Response:
    return _json(
        {
            "apiVersion": API_VERSION,
            "kind": "APIResourceList",
            "resources": [i.to_json() for i in KINDS.values()],
        }
    )


async def apply_handler(request: web.Request) -> web.Response:
    obj = await _body(request)
    info = by_kind(str(obj.get("kind", "")))
    meta = obj.get("metadata")
    project = meta.get("project") if isinstance(meta, dict) else None
    check_scope(info, project)
    authorize(request[PRINCIPAL], info, WRITE, project)
    validate(dict(obj))  # the object as given, before anything reads its other fields
    await _check_fields(request, obj)
    await admit(request.app[STORE], obj)
    result = await apply(
        request.app[STORE], obj, validate=validate, dry_run=_bool(request, "dryRun")
    )
    return _json(
        {"outcome": result.outcome, "object": result.object},
        status=201 if result.outcome == "created" and not _bool(request, "dryRun") else 200,
    )


async def list_handler(request: web.Request) -> web.StreamResponse:
    info, project = _target(request)
    authorize(request[PRINCIPAL], info, READ, project, listing=True)
    selector = selectors.parse(request.query.get("labelSelector"))
    if _bool(request, "watch"):
        return await _watch(request, info, project, selector)
    try:
        limit = int(request.query.get("limit", "0"))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if limit < 0:
        raise BadRequest("limit must not be negative")
    result = await request.app[STORE].list(
        info.kind,
        project,
        limit=limit,
        continue_token=request.query.get("continue") or None,
        selector=selector,
    )
    meta: dict[str, Any] = {"resourceVersion": str(result.revision)}
    if result.continue_token:
        meta["continue"] = result.continue_token
    return _json(
        {
            "apiVersion": API_VERSION,
            "kind": f"{info.kind}List",
            "metadata": meta,
            "items": result.items,
        }
    )


def _resource_version(request: web.Request) -> int:
    """The query's ``resourceVersion`` (0 when absent): an etcd revision, so digits only
    and at most 2**63-1; anything else is a 400 that says so."""
    raw = request.query.get("resourceVersion") or "0"
    if not _DIGITS.fullmatch(raw) or int(raw) > _MAX_REVISION:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise BadRequest(
            f"resourceVersion must be a revision: an integer from 0 to {_MAX_REVISION} "
            f"(got {shown!r})"
        )
    return int(raw)


async def _watch(
    request: web.Request, info: KindInfo, project: str | None, selector: selectors.Selector | None
) -> web.StreamResponse:
    revision = _resource_version(request)
    if revision:
        current = await request.app[STORE].etcd.revision(keys.root())
        if revision > current:
            raise BadRequest(
                f"resourceVersion {revision} is ahead of the store (at revision {current}): "
                "watch from a resourceVersion a read returned"
            )
    watch = ObjectWatch(request.app[STORE].etcd, info.kind, project, revision=revision)
    stream = watch.__aiter__()
    try:
        event = await anext(stream)  # raises Gone (410) before any byte is sent
    except BaseException:
        await stream.aclose()
        raise
    queue: asyncio.Queue[ObjectEvent] = asyncio.Queue(maxsize=1024)
    queue.put_nowait(event)

    async def pump() -> None:
        async for ev in stream:
            await queue.put(ev)

    pumping = asyncio.create_task(pump())
    request.app[WATCHES].add(asyncio.current_task())  # type: ignore[arg-type]
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        while not pumping.done():
            try:
                event = await asyncio.wait_for(queue.get(), _HEARTBEAT)
            except TimeoutError:  # a bookmark now and then: proves the stream is alive
                event = ObjectEvent(BOOKMARK, None, watch.revision)
            if project and event.object and event.object["metadata"].get("project") != project:
                continue  # never another project's object (its prefix holds none: a belt)
            if event.object is None or selector is None or selector.matches(event.object):
                await response.write(dumps_event(event))
        pumping.result()  # the watch ended: raise its error
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        pumping.cancel()
        await asyncio.gather(pumping, return_exceptions=True)
        await stream.aclose()
    return response


def _ref(request: web.Request, verb: str) -> tuple[KindInfo, Ref]:
    """The object the URL names, once the caller may ``verb`` it."""
    info, project = _target(request)
    if info.scope == "project" and not project:
        raise BadRequest(
            f"{info.kind} is project-scoped: use /apis/v1/projects/<project>/{info.plural}"
        )
    authorize(request[PRINCIPAL], info, verb, project)
    return info, Ref(info.kind, project, request.match_info["name"])


async def get_handler(request: web.Request) -> web.Response:
    _, r = _ref(request, READ)
    return _json(await request.app[STORE].get(r))


def _body_for(request: web.Request, info: KindInfo, project: str | None, obj: Obj) -> Obj:
    obj.setdefault("apiVersion", API_VERSION)
    if obj.get("kind", info.kind) != info.kind:
        raise BadRequest(f"the body is a {obj.get('kind')}, but the URL names {info.plural}")
    obj["kind"] = info.kind
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise Invalid("the object is invalid", [FieldError("metadata", "expected object")])
    if project:
        if meta.get("project", project) != project:
            raise BadRequest(
                f"metadata.project {meta['project']!r} differs from the URL's {project!r}"
            )
        meta["project"] = project
    check_scope(info, meta.get("project"))
    name = request.match_info.get("name")
    if name is not None and meta.setdefault("name", name) != name:
        raise BadRequest(f"metadata.name {meta['name']!r} differs from the URL's {name!r}")
    return obj


async def _check_fields(request: web.Request, obj: Obj) -> None:
    """Refuses a field only admins may set (``declarative_access.check_fields``), reading
    the object as it is now only when that has something to check."""
    who = request[PRINCIPAL]
    if guards_fields(who, obj):
        meta = obj["metadata"]
        stored = await request.app[STORE].get_or_none(
            Ref(str(obj["kind"]), meta.get("project"), str(meta["name"]))
        )
        check_fields(who, obj, stored)


async def create_handler(request: web.Request) -> web.Response:
    info, project = _target(request)
    if project:  # refused before the body is read
        authorize(request[PRINCIPAL], info, WRITE, project)
    obj = _body_for(request, info, project, await _body(request))
    authorize(request[PRINCIPAL], info, WRITE, obj["metadata"].get("project"))
    obj = validate(obj)
    await _check_fields(request, obj)
    await admit(request.app[STORE], obj)
    return _json(await request.app[STORE].create(obj), status=201)


async def replace_handler(request: web.Request) -> web.Response:
    info, r = _ref(request, WRITE)
    obj = validate(_body_for(request, info, r.project, await _body(request)))
    await _check_fields(request, obj)
    await admit(request.app[STORE], obj)
    updated = await request.app[STORE].update(obj)
    if updated is None:
        return _json(_success(f"{r} deleted"))
    return _json(updated)


def _success(message: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Status",
        "status": "Success",
        "code": 200,
        "message": message,
    }


async def delete_handler(request: web.Request) -> web.Response:
    _, r = _ref(request, WRITE)
    rv = _resource_version(request)
    await admit_delete(request.app[STORE], r)
    result = await request.app[STORE].delete(r, resource_version_=rv)
    if result is None:
        return _json(_success(f"{r} deleted"))
    return _json(result)


async def events_handler(request: web.Request) -> web.Response:
    _, r = _ref(request, READ)
    store = request.app[STORE]
    obj = await store.get_or_none(r)
    uid = obj["metadata"]["uid"] if obj else None
    events = await store.events_for(r, uid)
    return _json({"apiVersion": API_VERSION, "kind": "EventList", "items": events})


def make_app(store: Store, admin: AdminToken, tokens: TokenChecker | None) -> web.Application:
    """The ``/apis/v1`` sub-application: it takes the bootstrap ``admin`` token (whose
    record it follows while it runs) and the identity tokens ``tokens`` checks."""
    app = web.Application(
        middlewares=[status_errors, token_auth(admin, tokens)], client_max_size=_MAX_BODY
    )
    app[STORE] = store

    async def follow_admin_token(app: web.Application) -> AsyncIterator[None]:
        following = asyncio.create_task(admin.follow())
        yield
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)

    app.cleanup_ctx.append(follow_admin_token)
    app[WATCHES] = weakref.WeakSet[asyncio.Task[Any]]()

    async def stop_watches(app: web.Application) -> None:
        watches: weakref.WeakSet[asyncio.Task[Any]] = app[WATCHES]
        for task in list(watches):
            task.cancel()

    app.on_shutdown.append(stop_watches)
    app.router.add_get("/", discovery)
    app.router.add_post("/apply", apply_handler)
    for base in ("/{plural}", "/projects/{project}/{plural}"):
        app.router.add_get(base, list_handler)
        app.router.add_post(base, create_handler)
        app.router.add_get(base + "/{name}", get_handler)
        app.router.add_put(base + "/{name}", replace_handler)
        app.router.add_delete(base + "/{name}", delete_handler)
        app.router.add_get(base + "/{name}/events", events_handler)
    return app
