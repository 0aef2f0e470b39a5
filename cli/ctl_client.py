"""desiredctl's HTTP client for the declarative API.

Owns: requests with the token, discovery of kinds (names accepted in any
case, singular or plural), object URLs, paged lists, the watch stream, and
turning Status bodies into ``ApiError``.

Must never: print; the commands decide what users see.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from cli.ctl_config import CtlConfig


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.reason = body.get("reason", "")
        self.causes = (body.get("details") or {}).get("causes") or []
        super().__init__(body.get("message") or f"HTTP {status}")


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    scope: str


class Client:
    def __init__(self, cfg: CtlConfig, concurrency: int = 16) -> None:
        self.cfg = cfg
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {cfg.token}"},
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=None),
        )
        self._kinds: dict[str, Kind] | None = None

    async def close(self) -> None:
        await self._session.close()

    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            async with self._session.request(method, self.cfg.url + path, **kw) as resp:
                text = await resp.text()
        except aiohttp.ClientError as exc:
            raise ApiError(503, {"message": f"cannot reach {self.cfg.url}: {exc}"}) from None
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {"message": f"HTTP {resp.status}: {text[:200]}"}
        if resp.status >= 400:
            raise ApiError(resp.status, body)
        return body

    async def kinds(self) -> dict[str, Kind]:
        if self._kinds is None:
            body = await self.request("GET", "/apis/v1/")
            self._kinds = {
                r["kind"]: Kind(r["kind"], r["plural"], r["scope"]) for r in body["resources"]
            }
        return self._kinds

    async def kind(self, name: str) -> Kind:
        kinds = await self.kinds()
        wanted = name.lower()
        for k in kinds.values():
            if wanted in (k.kind.lower(), k.plural):
                return k
        known = ", ".join(sorted(kinds))
        raise ApiError(
            400,
            {"message": f"unknown kind {name!r}; known kinds: {known}", "reason": "UnknownKind"},
        )

    @staticmethod
    def collection(kind: Kind, project: str | None) -> str:
        if project and kind.scope != "cluster":
            return f"/apis/v1/projects/{project}/{kind.plural}"
        return f"/apis/v1/{kind.plural}"

    async def apply(self, obj: dict[str, Any], dry_run: bool) -> dict[str, Any]:
        params = {"dryRun": "true"} if dry_run else {}
        return await self.request("POST", "/apis/v1/apply", json=obj, params=params)

    async def get(self, kind: Kind, project: str | None, name: str) -> dict[str, Any]:
        return await self.request("GET", f"{self.collection(kind, project)}/{name}")

    async def delete(self, kind: Kind, project: str | None, name: str) -> dict[str, Any]:
        return await self.request("DELETE", f"{self.collection(kind, project)}/{name}")

    async def events(self, kind: Kind, project: str | None, name: str) -> list[dict[str, Any]]:
        body = await self.request("GET", f"{self.collection(kind, project)}/{name}/events")
        return list(body.get("items", []))

    async def list(
        self, kind: Kind, project: str | None, selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object (paging through), and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        params: dict[str, str] = {"limit": "500"}
        if selector:
            params["labelSelector"] = selector
        while True:
            body = await self.request("GET", self.collection(kind, project), params=params)
            items += body.get("items", [])
            token = body.get("metadata", {}).get("continue")
            if not token:
                return items, body.get("metadata", {}).get("resourceVersion", "0")
            params["continue"] = token

    async def watch(
        self, kind: Kind, project: str | None, selector: str | None, revision: str
    ) -> AsyncIterator[dict[str, Any]]:
        params = {"watch": "true", "resourceVersion": revision}
        if selector:
            params["labelSelector"] = selector
        try:
            async with self._session.get(
                self.cfg.url + self.collection(kind, project), params=params
            ) as resp:
                if resp.status >= 400:
                    text = await resp.text()
                    raise ApiError(
                        resp.status, json.loads(text) if text.startswith("{") else {"message": text}
                    )
                async for line in resp.content:
                    if line.strip():
                        yield json.loads(line)
        except aiohttp.ClientError as exc:
            raise ApiError(503, {"message": f"watch broke: {exc}"}) from None
