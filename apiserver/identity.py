"""The identity service under ``/identity``: the Keystone v3 subset real clients use.

Owns: version discovery (``/identity``, ``/identity/v3``); password (and
token) authentication with every scope form keystoneauth1 sends (project by
id or by name and domain, domain, system, unscoped); ``X-Subject-Token``;
token validation (``GET``/``HEAD /v3/auth/tokens``) and revocation
(``DELETE``, kept in etcd until the token would have expired); the service
catalog; ``/v3/auth/projects`` and ``/v3/projects[?name=]``. Users and
projects are the ``User`` and ``Project`` objects; Keystone ids are their
uids without dashes. Errors are Keystone's ``{"error": {code, message,
title}}``.

Passwords are checked off the event loop (``state.passwords.PasswordChecks``:
a few threads of their own, a bounded queue, 503 past it), an unknown user's
answered as late as a known one's (without the work), and Keystone's lockout
(``state.lockout``) refuses a user after repeated failures: "The account is
locked for user: <id>.", checked before the password as Keystone does.

Must never: issue a token for a disabled user or project, or to a user
without a role on the project asked for, or to a locked-out user; accept a
revoked token, or one whose user or project is gone, disabled or made anew,
or whose user lost a role it carries (``apiserver.token_users``,
``apiserver.token_projects``); check a password on the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from apiserver import request_text
from apiserver.token_projects import TokenProjects
from apiserver.token_users import TokenUsers
from apiserver.tokens import Token, decode, encode
from apiserver.urls import base_url
from state import keys
from state.envelope import Obj, Ref
from state.errors import DesiredError, Unavailable
from state.etcd import Put, absent
from state.keywatch import BOOKMARK, DELETE, KeyWatch
from state.lockout import Failures, LockoutPolicy, Lockouts
from state.passwords import PasswordChecks
from state.store import Store

DOMAIN = {"id": "default", "name": "Default"}
#: roles and what they imply
IMPLIED = {"admin": ("admin", "member", "reader"), "member": ("member", "reader")}
#: every role there is: the implied ones and ``service`` (desired's daemons)
ROLES = (*IMPLIED["admin"], "service")
ROLE_IDS = {r: uuid.uuid5(uuid.NAMESPACE_URL, f"desired:role:{r}").hex for r in ROLES}
MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


class KeystoneError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _fail(code: int, message: str) -> KeystoneError:
    return KeystoneError(code, message)


def _object(value: Any, what: str) -> dict[str, Any]:
    """``value`` when it is a JSON object ({} when absent); Keystone's 400 otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(400, f"{what} must be an object")
    return value


def keystone_id(obj: Obj) -> str:
    return keystone_id_of(str(obj["metadata"]["uid"]))


def keystone_id_of(uid: str) -> str:
    """Keystone's form of an object's uid (32 hex digits)."""
    return uid.replace("-", "")


def uid_of(ident: str) -> str:
    """The uid a Keystone id stands for (ids without dashes, as Keystone shows them, or
    with); other text is returned as it is."""
    try:
        return str(uuid.UUID(ident))
    except ValueError:
        return ident


def _stamp(seconds: float) -> str:
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class Identity:
    """The service's state: the store, the signing key, the revoked audit ids, the
    password checks and the lockout policy."""

    def __init__(
        self,
        store: Store,
        token_ttl: int,
        lockout: LockoutPolicy | None = None,
        checks: PasswordChecks | None = None,
    ) -> None:
        self.store = store
        self.token_ttl = token_ttl
        self.key = b""
        self.revoked: set[str] = set()
        self.lockouts = Lockouts(store.etcd, lockout or LockoutPolicy())
        self.checks = checks or PasswordChecks()
        #: the users tokens stand for, and the projects they are scoped to, as they are now
        self.users = TokenUsers(store, _implied)
        self.projects = TokenProjects(store)

    async def signing_key(self) -> bytes:
        """The cloud's token key, read (or made, by the first API server) at first use, so
        that an API server starts even while etcd is away."""
        if not self.key:
            fresh = secrets.token_bytes(32)
            res = await self.store.etcd.txn(
                [absent(keys.token_key())], [Put(keys.token_key(), fresh)]
            )
            if res.succeeded:
                self.key = fresh
            else:
                kv = await self.store.etcd.get(keys.token_key())
                if kv is None:
                    raise Unavailable("the identity service's key vanished; retry later")
                self.key = kv.value
        return self.key

    async def follow_revocations(self) -> None:
        """Keeps the revoked audit ids, retrying while etcd is away."""
        while True:
            try:
                async for ev in KeyWatch(self.store.etcd, keys.revoked_prefix()):
                    if ev.type == BOOKMARK:
                        continue
                    audit_id = keys.last_segment(ev.key)
                    (self.revoked.discard if ev.type == DELETE else self.revoked.add)(audit_id)
            except DesiredError:
                await asyncio.sleep(1.0)

    async def check(self, text: str) -> Token | None:
        token = decode(text, await self.signing_key()) if text else None
        if token is None or token.audit_id in self.revoked:
            return None
        if not await self.users.holds(token, keystone_id_of):
            return None  # its user was deleted or disabled, or lost a role it carries
        if not await self.projects.holds(token, keystone_id_of):
            return None  # its project was deleted (or made anew) or disabled
        return token

    async def follow_grants(self) -> None:
        """Keeps the users and projects tokens stand for as etcd has them, until cancelled."""
        await asyncio.gather(self.users.follow(), self.projects.follow())

    async def grants_listed(self) -> None:
        """Returns once every user and project has been listed (checks then read no etcd)."""
        await self.users.users.synced.wait()
        await self.projects.projects.synced.wait()

    async def revoke(self, token: Token) -> None:
        ttl = max(1, int(token.expires - time.time()) + 1)
        lease = await self.store.etcd.lease_grant(ttl)
        await self.store.etcd.put(keys.revoked(token.audit_id), b"1", lease=lease)
        self.revoked.add(token.audit_id)

    # --- users and projects ---------------------------------------------------

    async def _by_id_or_name(self, kind: str, ident: Any) -> Obj | None:
        ident = _object(ident, kind.lower())
        if "id" in ident:
            for obj in (await self.store.list(kind)).items:
                if keystone_id(obj) == ident["id"]:
                    return obj
            return None
        if "name" in ident:
            domain = _object(ident.get("domain"), f"{kind.lower()}.domain")
            # everything is in the Default domain: another, by id or by name, has nothing
            if (
                domain.get("id", "default") != "default"
                or domain.get("name", "Default") != "Default"
            ):
                return None
            return await self.store.get_or_none(Ref(kind, None, str(ident["name"])))
        raise _fail(400, f"a {kind.lower()} needs an id, or a name and a domain")

    async def authenticate(self, body: Any) -> Token:
        try:
            auth = body["auth"]
            identity = auth["identity"]
            methods = identity["methods"]
        except (KeyError, TypeError):
            raise _fail(400, "expected {'auth': {'identity': {'methods': [...], ...}}}") from None
        user: Obj | None
        if not isinstance(identity, dict) or not isinstance(methods, list):
            raise _fail(400, "expected {'auth': {'identity': {'methods': [...], ...}}}")
        if "password" in methods:
            user_ref = _object(_object(identity.get("password"), "password").get("user"), "user")
            user = await self._password_user(user_ref)
        elif "token" in methods:
            old = await self.check(str(_object(identity.get("token"), "token").get("id", "")))
            if old is None:
                raise _fail(401, "The request you have made requires authentication.")
            user = await self.store.get_or_none(Ref("User", None, old.user))
            if user is None:
                raise _fail(401, "The request you have made requires authentication.")
        else:
            raise _fail(401, f"unsupported authentication methods {methods}; use password")
        if not user["spec"].get("enabled", True):
            raise _fail(401, "The request you have made requires authentication.")
        return await self._scoped(user, auth.get("scope"))

    async def _password_user(self, user_ref: dict[str, Any]) -> Obj:
        """The user whose password ``user_ref`` has right (401 otherwise, or while the
        user is locked out)."""
        found = await self._by_id_or_name("User", user_ref)
        password = user_ref.get("password")
        if not isinstance(password, str):
            raise _fail(401, "The request you have made requires authentication.")
        if found is None:
            await self.checks.verify(password, None)  # as long as a known user's check
            raise _fail(401, "The request you have made requires authentication.")
        uid = str(found["metadata"]["uid"])
        lockable = not found["spec"].get("ignoreLockoutFailureAttempts", False)
        failures = await self.lockouts.read(uid) if lockable else Failures()
        if self.lockouts.locked(failures):
            raise _fail(401, f"The account is locked for user: {keystone_id(found)}.")
        if not await self.checks.verify(password, found["spec"].get("passwordHash")):
            if lockable:
                self.lockouts.failed_soon(uid, failures)  # written after the answer
            raise _fail(401, "The request you have made requires authentication.")
        await self.lockouts.succeeded(uid, failures)
        return found

    async def _scoped(self, user: Obj, scope: Any) -> Token:
        assignments = user["spec"].get("roles") or []
        cloud_roles = {a["role"] for a in assignments if not a.get("project")}
        now = time.time()
        base = {
            "user_id": keystone_id(user),
            "user": user["metadata"]["name"],
            "issued": now,
            "expires": now + self.token_ttl,
            "audit_id": secrets.token_urlsafe(16),
        }
        if not scope or scope == "unscoped":
            return Token(project_id="", project="", roles=(), **base)
        if not isinstance(scope, dict):
            raise _fail(400, "scope must be an object or 'unscoped'")
        if "system" in scope or "domain" in scope:
            roles = _implied(cloud_roles)
            if not roles:
                raise _fail(401, "the user has no role on the whole cloud")
            return Token(project_id="", project="", roles=roles, system=True, **base)
        project = await self._by_id_or_name("Project", scope.get("project") or {})
        if project is None or not project["spec"].get("enabled", True):
            raise _fail(401, "the project asked for does not exist or is disabled")
        name = project["metadata"]["name"]
        roles = _implied(cloud_roles | {a["role"] for a in assignments if a.get("project") == name})
        if not roles:
            raise _fail(401, f"the user has no role on project {name}")
        return Token(project_id=keystone_id(project), project=name, roles=roles, **base)

    async def projects_of(self, token: Token) -> list[Obj]:
        """The projects the token's user may scope to (every project for cloud admins)."""
        user = await self.store.get_or_none(Ref("User", None, token.user))
        if user is None:
            return []
        assignments = user["spec"].get("roles") or []
        everything = any(not a.get("project") and a["role"] == "admin" for a in assignments)
        names = {a.get("project") for a in assignments}
        return [
            p
            for p in (await self.store.list("Project")).items
            if everything or p["metadata"]["name"] in names
        ]


def _implied(roles: set[str]) -> tuple[str, ...]:
    out: set[str] = set()
    for r in roles:
        out.update(IMPLIED.get(r, (r,)))
    return tuple(sorted(out))


def catalog(base: str) -> list[dict[str, Any]]:
    def service(kind: str, name: str, url: str) -> dict[str, Any]:
        sid = uuid.uuid5(uuid.NAMESPACE_URL, f"desired:service:{kind}").hex
        return {
            "type": kind,
            "name": name,
            "id": sid,
            "endpoints": [
                {
                    "id": uuid.uuid5(uuid.NAMESPACE_URL, f"desired:{kind}:{interface}").hex,
                    "interface": interface,
                    "region": "RegionOne",
                    "region_id": "RegionOne",
                    "url": url,
                }
                for interface in ("public", "internal", "admin")
            ],
        }

    return [
        service("identity", "keystone", f"{base}/identity"),
        service("compute", "nova", f"{base}/compute/v2.1"),
        service("image", "glance", f"{base}/image"),
        service("network", "neutron", f"{base}/network"),
    ]


def token_body(token: Token, base: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": ["password"],
        "user": {
            "id": token.user_id,
            "name": token.user,
            "domain": DOMAIN,
            "password_expires_at": None,
        },
        "audit_ids": [token.audit_id],
        "expires_at": _stamp(token.expires),
        "issued_at": _stamp(token.issued),
    }
    if token.project_id:
        body["project"] = {"id": token.project_id, "name": token.project, "domain": DOMAIN}
        body["is_domain"] = False
    if token.system:
        body["system"] = {"all": True}
    if token.project_id or token.system:
        body["roles"] = [{"id": ROLE_IDS[r], "name": r} for r in token.roles]
        body["catalog"] = catalog(base)
    return {"token": body}


def project_body(project: Obj, base: str) -> dict[str, Any]:
    pid = keystone_id(project)
    return {
        "id": pid,
        "name": project["metadata"]["name"],
        "description": project["spec"].get("description", ""),
        "enabled": project["spec"].get("enabled", True),
        "domain_id": "default",
        "parent_id": "default",
        "is_domain": False,
        "tags": [],
        "options": {},
        "links": {"self": f"{base}/identity/v3/projects/{pid}"},
    }


IDENTITY = web.AppKey("identity", Identity)


def _version(request: web.Request) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base_url(request)}/identity/v3/"}],
        "media-types": MEDIA,
    }


async def versions(request: web.Request) -> web.Response:
    return web.json_response({"versions": {"values": [_version(request)]}}, status=300)


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": _version(request)})


async def _caller(request: web.Request) -> Token:
    token = await request.app[IDENTITY].check(request.headers.get("X-Auth-Token", ""))
    if token is None:
        raise _fail(401, "The request you have made requires authentication.")
    return token


async def issue(request: web.Request) -> web.Response:
    try:
        body = await request_text.decode(await request.read())
    except ValueError:
        raise _fail(400, "the request body is not JSON") from None
    identity = request.app[IDENTITY]
    token = await identity.authenticate(body)
    return web.json_response(
        token_body(token, base_url(request)),
        status=201,
        headers={"X-Subject-Token": encode(token, await identity.signing_key())},
    )


async def validate(request: web.Request) -> web.Response:
    await _caller(request)
    subject = await request.app[IDENTITY].check(request.headers.get("X-Subject-Token", ""))
    if subject is None:
        raise _fail(404, "Could not find token.")
    if request.method == "HEAD":
        return web.Response(status=200)
    return web.json_response(
        token_body(subject, base_url(request)),
        headers={"X-Subject-Token": request.headers["X-Subject-Token"]},
    )


async def revoke(request: web.Request) -> web.Response:
    await _caller(request)
    identity = request.app[IDENTITY]
    subject = await identity.check(request.headers.get("X-Subject-Token", ""))
    if subject is None:
        raise _fail(404, "Could not find token.")
    await identity.revoke(subject)
    return web.Response(status=204)


async def auth_projects(request: web.Request) -> web.Response:
    token = await _caller(request)
    base = base_url(request)
    projects = await request.app[IDENTITY].projects_of(token)
    return web.json_response(
        {
            "projects": [project_body(p, base) for p in projects],
            "links": {"self": f"{base}/identity/v3/auth/projects", "next": None, "previous": None},
        }
    )


async def auth_catalog(request: web.Request) -> web.Response:
    await _caller(request)
    return web.json_response({"catalog": catalog(base_url(request))})


async def list_projects(request: web.Request) -> web.Response:
    token = await _caller(request)
    base = base_url(request)
    mine = await request.app[IDENTITY].projects_of(token)
    visible = (
        mine
        if "admin" not in token.roles
        else (await request.app[IDENTITY].store.list("Project")).items
    )
    name = request.query.get("name")
    shown = [p for p in visible if name is None or p["metadata"]["name"] == name]
    return web.json_response(
        {
            "projects": [project_body(p, base) for p in shown],
            "links": {"self": f"{base}/identity/v3/projects", "next": None, "previous": None},
        }
    )


async def show_project(request: web.Request) -> web.Response:
    token = await _caller(request)
    identity = request.app[IDENTITY]
    wanted = request.match_info["project_id"]
    allowed = (
        (await identity.store.list("Project")).items
        if "admin" in token.roles
        else await identity.projects_of(token)
    )
    for p in allowed:
        if keystone_id(p) == wanted:
            return web.json_response({"project": project_body(p, base_url(request))})
    raise _fail(404, f"Could not find project: {wanted}.")


@web.middleware
async def keystone_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except KeystoneError as exc:
        title = _TITLES.get(exc.code, "Error")
        return web.json_response(
            {"error": {"code": exc.code, "message": exc.message, "title": title}},
            status=exc.code,
        )
    except DesiredError as exc:
        title = {404: "Not Found", 503: "Service Unavailable"}.get(exc.status, "Error")
        return web.json_response(
            {"error": {"code": exc.status, "message": exc.message, "title": title}},
            status=exc.status,
        )


def make_app(identity: Identity) -> web.Application:
    """The ``/identity`` sub-app; it also follows revocations for the other sub-apps that
    check ``identity``'s tokens."""
    app = web.Application(middlewares=[keystone_errors])
    app[IDENTITY] = identity

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        following = [
            asyncio.create_task(identity.follow_revocations()),
            asyncio.create_task(identity.follow_grants()),
        ]
        yield
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)
        await identity.lockouts.settle()
        identity.checks.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("", versions)
    app.router.add_get("/", versions)
    app.router.add_get("/v3", version)
    app.router.add_get("/v3/", version)
    app.router.add_post("/v3/auth/tokens", issue)
    app.router.add_get("/v3/auth/tokens", validate)  # also answers HEAD
    app.router.add_delete("/v3/auth/tokens", revoke)
    app.router.add_get("/v3/auth/projects", auth_projects)
    app.router.add_get("/v3/auth/catalog", auth_catalog)
    app.router.add_get("/v3/projects", list_projects)
    app.router.add_get("/v3/projects/{project_id}", show_project)
    return app
