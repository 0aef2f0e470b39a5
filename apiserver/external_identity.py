"""Tokens of an external Keystone: validated there, kept for a while, their projects mirrored.

Owns: asking ``<keystone>/v3/auth/tokens`` about a token (the token itself
as ``X-Auth-Token``, which Keystone's ``token_subject`` rule allows), turning
its answer into a ``Token``, keeping valid ones for ``cache_seconds`` (never
past their expiry; a revocation in Keystone is seen once that ends, as with
keystonemiddleware), and a Project object per Keystone project seen, whose
uid is the Keystone project's id (so its servers, quotas and views carry
that id) and whose name is Keystone's where that is a free object name.

Must never: accept a token Keystone did not vouch for; keep one past its expiry.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import aiohttp

from apiserver.compute.names import is_object_name
from apiserver.tokens import Token
from state.envelope import Ref
from state.errors import AlreadyExists, Unavailable
from state.store import Store

#: the most tokens kept at once (the oldest go first)
_CACHE_SIZE = 10_000


def _when(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ExternalTokens:
    def __init__(self, store: Store, keystone_url: str, cache_seconds: float = 300.0) -> None:
        """``keystone_url``: the Keystone's base, with or without ``/v3``."""
        self.store = store
        self.url = keystone_url.rstrip("/").removesuffix("/v3") + "/v3/auth/tokens"
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Token, float]] = {}
        #: Keystone project id -> the local Project object's name
        self._projects: dict[str, str] = {}

    async def check(self, text: str) -> Token | None:
        if not text:
            return None
        cached = self._cache.get(text)
        now = time.time()
        if cached is not None and now < cached[1]:
            return cached[0]
        body = await self._validate(text)
        if body is None:
            self._cache.pop(text, None)
            return None
        token = await self._token(body["token"])
        if token.expired:
            return None
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[text] = (token, min(token.expires, now + self.cache_seconds))
        return token

    async def _validate(self, text: str) -> dict[str, Any] | None:
        headers = {"X-Auth-Token": text, "X-Subject-Token": text}
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
                http.get(self.url, headers=headers) as resp,
            ):
                if resp.status in (401, 403, 404):
                    return None
                if resp.status != 200:
                    raise Unavailable(f"Keystone answered {resp.status} to a token check")
                return dict(await resp.json())
        except aiohttp.ClientError as exc:
            raise Unavailable(f"Keystone cannot be reached: {exc}") from None

    async def _token(self, t: dict[str, Any]) -> Token:
        user, project = t.get("user") or {}, t.get("project") or {}
        local = await self._local_project(project) if project else ""
        return Token(
            user_id=str(user.get("id", "")),
            user=str(user.get("name", "")),
            project_id=str(project.get("id", "")),
            project=local,
            roles=tuple(str(r.get("name", "")).lower() for r in t.get("roles") or []),
            issued=_when(t["issued_at"]) if t.get("issued_at") else time.time(),
            expires=_when(t["expires_at"]),
            audit_id=str((t.get("audit_ids") or [""])[0]),
            system=bool(t.get("system")),
        )

    async def _local_project(self, project: dict[str, Any]) -> str:
        """The name of the Project object mirroring a Keystone project (made at first sight)."""
        pid = str(project["id"])
        if pid in self._projects:
            return self._projects[pid]
        try:
            uid = str(uuid.UUID(hex=pid))  # Keystone's ids are 32 hex digits: the same id here
        except ValueError:
            uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"keystone-project:{pid}"))
        for p in (await self.store.list("Project")).items:
            if p["metadata"]["uid"] == uid:
                self._projects[pid] = p["metadata"]["name"]
                return self._projects[pid]
        wanted = str(project.get("name", "")).lower()
        names = [wanted] if is_object_name(wanted, limit=40) else []
        names.append(f"keystone-{pid[:12]}")
        for name in names:
            obj = {"kind": "Project", "metadata": {"name": name}, "spec": {}}
            try:
                await self.store.create(obj, uid=uid)
            except AlreadyExists:
                existing = await self.store.get_or_none(Ref("Project", None, name))
                if existing is None or existing["metadata"]["uid"] != uid:
                    continue
            self._projects[pid] = name
            return name
        raise Unavailable(f"no local project could mirror Keystone project {pid}")
