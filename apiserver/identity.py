"""The identity service under ``/identity``: the Keystone v3 subset real clients use.

Owns: version discovery (``/identity``, ``/identity/v3``); password (and
token) authentication with every scope form keystoneauth1 sends (project by
id or by name and domain, domain, system, unscoped; none: the user's default
project where it has a role, else unscoped, as Keystone's), and application
credential authentication (``state.app_credentials``: its project, its
roles while its user still holds them, its expiry; the token dies with the
credential); ``X-Subject-Token``; token validation (``GET``/``HEAD
/v3/auth/tokens``) and revocation (``DELETE``, kept in etcd until the token
would have expired); the service catalog; ``/v3/auth/projects``. Users and
projects are the ``User`` and ``Project`` objects; Keystone ids are their
uids without dashes, their names as ``apiserver.keystone_names`` keeps them (the admin API over them is
``apiserver.keystone_admin``). Errors are Keystone's ``{"error": {code,
message, title}}``.

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
import dataclasses
import datetime as dt
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from apiserver import keystone_names, request_text
from apiserver.token_projects import TokenProjects
from apiserver.token_users import TokenUsers
from apiserver.tokens import Token, decode, encode
from apiserver.urls import base_url
from state import keys
from state.access_rules import AccessRules
from state.app_credentials import AppCredentials
from state.ec2_credentials import Ec2Credentials
from state.envelope import Obj, Ref
from state.errors import DesiredError, Invalid, Transient, Unavailable
from state.etcd import Put, absent
from state.keywatch import BOOKMARK, DELETE, KeyWatch
from state.lockout import Failures, LockoutPolicy, Lockouts
from state.passwords import PasswordChecks
from state.roles import implied, role_id
from state.store import Store

DOMAIN = {"id": "default", "name": "Default"}
MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    503: "Service Unavailable",
}


class KeystoneError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fail(code: int, message: str) -> KeystoneError:
    """Keystone's error ``code`` with ``message``, to raise."""
    return KeystoneError(code, message)


def _object(value: Any, what: str) -> dict[str, Any]:
    """``value`` when it is a JSON object ({} when absent); Keystone's 400 otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(400, f"{what} must be an object")
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
        #: "<user uid>" or "<user uid>/<project>" -> the time before which that user's
        #: tokens (those scoped to that project) were revoked
        self.revoked_users: dict[str, float] = {}
        self.lockouts = Lockouts(store.etcd, lockout or LockoutPolicy())
        self.checks = checks or PasswordChecks()
        self.app_credentials = AppCredentials(store.etcd)
        self.access_rules = AccessRules(store.etcd)
        self.ec2_credentials = Ec2Credentials(store.etcd)
        #: the users tokens stand for, and the projects they are scoped to, as they are now
        self.users = TokenUsers(store, implied)
        self.projects = TokenProjects(store)
        #: the same, never followed: they read etcd at each look-up (``KindCache`` before
        #: its first list), for a token the watched ones refuse
        self.users_now = TokenUsers(store, implied)
        self.projects_now = TokenProjects(store)

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
        """Keeps the revoked audit ids and users' revocations, retrying while etcd is away."""
        await asyncio.gather(self._follow_tokens(), self._follow_users())

    async def _follow_tokens(self) -> None:
        while True:
            try:
                async for ev in KeyWatch(self.store.etcd, keys.revoked_prefix()):
                    if ev.type == BOOKMARK:
                        continue
                    audit_id = keys.last_segment(ev.key)
                    (self.revoked.discard if ev.type == DELETE else self.revoked.add)(audit_id)
            except DesiredError:
                await asyncio.sleep(1.0)

    async def _follow_users(self) -> None:
        while True:
            try:
                prefix = keys.user_revocations_prefix()
                async for ev in KeyWatch(self.store.etcd, prefix):
                    if ev.type == BOOKMARK:
                        continue
                    which = ev.key[len(prefix) :].decode("utf-8", "surrogatepass")
                    if ev.type == DELETE:
                        self.revoked_users.pop(which, None)
                    else:
                        self.revoked_users[which] = float(ev.value)
            except DesiredError:
                await asyncio.sleep(1.0)

    async def revoke_user(self, user_uid: str, project: str = "") -> None:
        """Revokes every token of user ``user_uid`` (scoped to ``project``, if given) issued
        until now, as Keystone's revocation events: at once at this API server, as soon as
        they see it at the others."""
        now = time.time()
        lease = await self.store.etcd.lease_grant(self.token_ttl + 1)
        key = keys.user_revocation(user_uid, project)
        await self.store.etcd.put(key, repr(now).encode(), lease=lease)
        self.revoked_users[f"{user_uid}/{project}" if project else user_uid] = now

    def _revoked_since(self, token: Token) -> bool:
        uid = uid_of(token.user_id)
        before = max(
            self.revoked_users.get(uid, 0.0),
            self.revoked_users.get(f"{uid}/{token.project}", 0.0) if token.project else 0.0,
        )
        return token.issued <= before

    async def check(self, text: str) -> Token | None:
        token = decode(text, await self.signing_key()) if text else None
        if token is None or token.audit_id in self.revoked:
            return None
        if self._revoked_since(token):
            return None  # its user's password, account or grant changed since
        if not await self._grants_hold(token, self.users, self.projects) and not (
            await self._grants_hold_now(token)
        ):
            return None  # its user or project was deleted or disabled, or a role revoked
        if token.application_credential and not await self.app_credentials.get(
            token.application_credential
        ):
            return None  # its application credential was deleted
        return token

    async def follow_grants(self) -> None:
        """Keeps the users and projects tokens stand for as etcd has them, until cancelled."""
        await asyncio.gather(self.users.follow(), self.projects.follow())

    async def grants_listed(self) -> None:
        """Returns once every user and project has been listed (checks then read no etcd)."""
        await self.users.users.synced.wait()
        await self.projects.projects.synced.wait()

    @staticmethod
    async def _grants_hold(token: Token, users: TokenUsers, projects: TokenProjects) -> bool:
        return await users.holds(token, keystone_id_of) and await projects.holds(
            token, keystone_id_of
        )

    async def _grants_hold_now(self, token: Token) -> bool:
        """Whether etcd says ``token``'s user and project still hold it: asked when the
        watched ones refuse it, since the watches may not have seen a write just made (a
        user or project created, a role granted through this API) when its first token
        comes. No (the token refused) while etcd cannot say."""
        try:
            return await self._grants_hold(token, self.users_now, self.projects_now)
        except Transient:
            return False

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
            return await keystone_names.find(self.store, kind, str(ident["name"]))
        raise fail(400, f"a {kind.lower()} needs an id, or a name and a domain")

    async def authenticate(self, body: Any) -> Token:
        try:
            auth = body["auth"]
            identity = auth["identity"]
            methods = identity["methods"]
        except (KeyError, TypeError):
            raise fail(400, "expected {'auth': {'identity': {'methods': [...], ...}}}") from None
        user: Obj | None
        if not isinstance(identity, dict) or not isinstance(methods, list):
            raise fail(400, "expected {'auth': {'identity': {'methods': [...], ...}}}")
        if "password" in methods:
            user_ref = _object(_object(identity.get("password"), "password").get("user"), "user")
            user = await self.password_user(user_ref)
        elif "application_credential" in methods:
            return await self._app_credential_token(identity.get("application_credential"))
        elif "token" in methods:
            old = await self.check(str(_object(identity.get("token"), "token").get("id", "")))
            if old is None or old.application_credential:
                raise fail(401, "The request you have made requires authentication.")
            user = await self.store.get_or_none(Ref("User", None, old.user))
            if user is None or not user["spec"].get("enabled", True):
                raise fail(401, "The request you have made requires authentication.")
            # Keystone's rescoping: the new token expires with the old one
            token = await self._scoped(user, auth.get("scope"))
            before = old.methods or ("password",)
            return dataclasses.replace(
                token,
                expires=old.expires,
                methods=before if "token" in before else (*before, "token"),
            )
        else:
            raise fail(401, f"unsupported authentication methods {methods}; use password")
        if not user["spec"].get("enabled", True):
            raise fail(401, "The request you have made requires authentication.")
        return await self._scoped(user, auth.get("scope"))

    async def password_user(self, user_ref: dict[str, Any]) -> Obj:
        """The user whose password ``user_ref`` has right (401 otherwise, or while the
        user is locked out)."""
        found = await self._by_id_or_name("User", user_ref)
        password = user_ref.get("password")
        if not isinstance(password, str):
            raise fail(401, "The request you have made requires authentication.")
        if found is None:
            await self.checks.verify(password, None)  # as long as a known user's check
            raise fail(401, "The request you have made requires authentication.")
        uid = str(found["metadata"]["uid"])
        lockable = not found["spec"].get("ignoreLockoutFailureAttempts", False)
        failures = await self.lockouts.read(uid) if lockable else Failures()
        if self.lockouts.locked(failures):
            raise fail(401, f"The account is locked for user: {keystone_id(found)}.")
        if not await self.checks.verify(password, found["spec"].get("passwordHash")):
            if lockable:
                self.lockouts.failed_soon(uid, failures)  # written after the answer
            raise fail(401, "The request you have made requires authentication.")
        await self.lockouts.succeeded(uid, failures)
        return found

    async def _app_credential_token(self, ref: Any) -> Token:
        """A token for the application credential ``ref`` names (by id, or by name and
        user) with its secret: scoped to its project, with its roles (all of which its
        user must still hold there), expiring with it at the latest."""
        ref = _object(ref, "application_credential")
        secret = ref.get("secret")
        if not isinstance(secret, str):
            raise fail(401, "The request you have made requires authentication.")
        cred = None
        if "id" in ref:
            cred = await self.app_credentials.get(str(ref["id"]))
        elif "name" in ref:
            owner = await self._by_id_or_name("User", ref.get("user"))
            if owner is not None:
                mine = await self.app_credentials.of_user(str(owner["metadata"]["uid"]))
                cred = next((c for c in mine if c.name == ref["name"]), None)
        else:
            raise fail(400, "an application credential needs an id, or a name and a user")
        if not await self.checks.verify(secret, cred.secret_hash if cred else None) or not cred:
            raise fail(401, "The request you have made requires authentication.")
        user = next(
            (u for u in (await self.store.list("User")).items if u["metadata"]["uid"] == cred.user),
            None,
        )
        project = await self.store.get_or_none(Ref("Project", None, cred.project))
        if (
            cred.expired
            or user is None
            or not user["spec"].get("enabled", True)
            or project is None
            or not project["spec"].get("enabled", True)
        ):
            raise fail(401, "The request you have made requires authentication.")
        held = {
            a["role"]
            for a in user["spec"].get("roles") or []
            if a.get("project") in (None, "", cred.project)
        }
        roles = implied(set(cred.roles))
        if not set(roles) <= set(implied(held)):
            raise fail(401, "The user no longer holds a role of the application credential.")
        now = time.time()
        return Token(
            user_id=keystone_id(user),
            user=user["metadata"]["name"],
            project_id=keystone_id(project),
            project=cred.project,
            roles=roles,
            issued=now,
            expires=min(now + self.token_ttl, cred.expires_at or float("inf")),
            audit_id=secrets.token_urlsafe(16),
            application_credential=cred.id,
            restricted=not cred.unrestricted,
            access_rules=tuple(r.what for r in cred.access_rules),
        )

    async def _default_project(self, user: Obj) -> Obj | None:
        """``user``'s default project, if a login without a scope gets a token on it: it
        exists, is enabled, and the user has a role there (else, as Keystone's, such a login
        is unscoped)."""
        name = user["spec"].get("defaultProject")
        project = await self.store.get_or_none(Ref("Project", None, name)) if name else None
        if project is None or not project["spec"].get("enabled", True):
            return None
        held = any(a.get("project") in (None, "", name) for a in user["spec"].get("roles") or [])
        return project if held else None

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
        if not scope and (default := await self._default_project(user)) is not None:
            scope = {"project": {"id": keystone_id(default)}}  # Keystone's default scope
        if not scope or scope == "unscoped":
            return Token(project_id="", project="", roles=(), **base)
        if not isinstance(scope, dict):
            raise fail(400, "scope must be an object or 'unscoped'")
        if "system" in scope or "domain" in scope:
            roles = implied(cloud_roles)
            if not roles:
                raise fail(401, "the user has no role on the whole cloud")
            return Token(project_id="", project="", roles=roles, system=True, **base)
        project = await self._by_id_or_name("Project", scope.get("project") or {})
        if project is None or not project["spec"].get("enabled", True):
            raise fail(401, "the project asked for does not exist or is disabled")
        name = project["metadata"]["name"]
        roles = implied(cloud_roles | {a["role"] for a in assignments if a.get("project") == name})
        if not roles:
            raise fail(401, f"the user has no role on project {name}")
        return Token(project_id=keystone_id(project), project=name, roles=roles, **base)

    async def names(self, token: Token) -> tuple[str, str]:
        """The Keystone names of ``token``'s user and project, as they are now (a token
        carries their object names)."""
        user = await self.store.get_or_none(Ref("User", None, token.user))
        project = (
            await self.store.get_or_none(Ref("Project", None, token.project))
            if token.project_id
            else None
        )
        return (
            keystone_names.shown(user) if user else token.user,
            keystone_names.shown(project) if project else token.project,
        )

    async def projects_of(self, token: Token) -> list[Obj]:
        """The projects the token's user may scope to (every project for cloud admins)."""
        user = await self.store.get_or_none(Ref("User", None, token.user))
        return [] if user is None else await self.projects_of_user(user)

    async def projects_of_user(self, user: Obj) -> list[Obj]:
        """The projects ``user`` may scope to (every project for cloud admins)."""
        assignments = user["spec"].get("roles") or []
        everything = any(not a.get("project") and a["role"] == "admin" for a in assignments)
        names = {a.get("project") for a in assignments}
        return [
            p
            for p in (await self.store.list("Project")).items
            if everything or p["metadata"]["name"] in names
        ]


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


def token_body(token: Token, base: str, names: tuple[str, str]) -> dict[str, Any]:
    """Keystone's body of ``token``, its user and project named ``names``
    (``Identity.names``)."""
    body: dict[str, Any] = {
        "methods": list(token.methods)
        or ["application_credential" if token.application_credential else "password"],
        "user": {
            "id": token.user_id,
            "name": names[0],
            "domain": DOMAIN,
            "password_expires_at": None,
        },
        "audit_ids": [token.audit_id],
        "expires_at": _stamp(token.expires),
        "issued_at": _stamp(token.issued),
    }
    if token.application_credential:
        body["application_credential"] = {
            "id": token.application_credential,
            "restricted": token.restricted,
        }
        if token.access_rules:
            body["application_credential"]["access_rules"] = [
                {"service": service, "method": method, "path": path}
                for service, method, path in token.access_rules
            ]
    if token.project_id:
        body["project"] = {"id": token.project_id, "name": names[1], "domain": DOMAIN}
        body["is_domain"] = False
    if token.system:
        body["system"] = {"all": True}
    if token.project_id or token.system:
        body["roles"] = [{"id": role_id(r), "name": r} for r in token.roles]
        body["catalog"] = catalog(base)
    return {"token": body}


def project_ids(projects: list[Obj]) -> dict[str, str]:
    """Each project's Keystone id by its object name."""
    return {p["metadata"]["name"]: keystone_id(p) for p in projects}


def project_body(project: Obj, base: str, ids: dict[str, str]) -> dict[str, Any]:
    """Keystone's body of ``project``; ``ids``: every project's id by object name
    (``project_ids``), for its parent's."""
    pid = keystone_id(project)
    parent = project["spec"].get("parent")
    return {
        "id": pid,
        "name": keystone_names.shown(project),
        "description": project["spec"].get("description", ""),
        "enabled": project["spec"].get("enabled", True),
        "domain_id": "default",
        "parent_id": ids.get(parent, "default") if parent else "default",
        "is_domain": False,
        "tags": list(project["spec"].get("tags") or []),
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


async def caller(request: web.Request) -> Token:
    """The token of the request's ``X-Auth-Token``; Keystone's 401 without a good one."""
    token = await request.app[IDENTITY].check(request.headers.get("X-Auth-Token", ""))
    if token is None:
        raise fail(401, "The request you have made requires authentication.")
    return token


async def issue(request: web.Request) -> web.Response:
    try:
        body = await request_text.decode(await request.read())
    except ValueError:
        raise fail(400, "the request body is not JSON") from None
    identity = request.app[IDENTITY]
    token = await identity.authenticate(body)
    return web.json_response(
        token_body(token, base_url(request), await identity.names(token)),
        status=201,
        headers={"X-Subject-Token": encode(token, await identity.signing_key())},
    )


async def validate(request: web.Request) -> web.Response:
    await caller(request)
    subject = await request.app[IDENTITY].check(request.headers.get("X-Subject-Token", ""))
    if subject is None:
        raise fail(404, "Could not find token.")
    if request.method == "HEAD":
        return web.Response(status=200)
    return web.json_response(
        token_body(subject, base_url(request), await request.app[IDENTITY].names(subject)),
        headers={"X-Subject-Token": request.headers["X-Subject-Token"]},
    )


async def revoke(request: web.Request) -> web.Response:
    await caller(request)
    identity = request.app[IDENTITY]
    subject = await identity.check(request.headers.get("X-Subject-Token", ""))
    if subject is None:
        raise fail(404, "Could not find token.")
    await identity.revoke(subject)
    return web.Response(status=204)


async def auth_projects(request: web.Request) -> web.Response:
    token = await caller(request)
    base = base_url(request)
    projects = await request.app[IDENTITY].projects_of(token)
    ids = project_ids((await request.app[IDENTITY].store.list("Project")).items)
    return web.json_response(
        {
            "projects": [project_body(p, base, ids) for p in projects],
            "links": {"self": f"{base}/identity/v3/auth/projects", "next": None, "previous": None},
        }
    )


async def auth_catalog(request: web.Request) -> web.Response:
    await caller(request)
    return web.json_response({"catalog": catalog(base_url(request))})


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
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # no such route, or no such method on it: in Keystone's shape too
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response(
            {"error": {"code": exc.status, "message": exc.reason, "title": exc.reason}},
            status=exc.status,
            headers=allow,
        )
    except DesiredError as exc:
        # a spec its schema or admission refuses is Keystone's validation error
        code = 400 if isinstance(exc, Invalid) else exc.status
        return web.json_response(
            {"error": {"code": code, "message": exc.message, "title": _TITLES.get(code, "Error")}},
            status=code,
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
    return app
