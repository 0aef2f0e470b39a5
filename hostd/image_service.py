"""hostd's client of the image service: the data of images stored there, read with hostd's
own credentials.

Owns: logging in to the identity service as hostd's user (password, scoped
to the whole cloud, where its role is ``service``), keeping the token until
a minute before it expires (or the image service refuses it), reading
``/image/v2/images/<uid>/file`` in chunks, and uploading a snapshot there.

Must never: log or keep the password anywhere but in memory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from hostd.images import ImageError, ImageFetchError

_CHUNK = 1 << 20


class ImageService:
    def __init__(self, api_url: str, user: str, password: str) -> None:
        """``api_url``: the API server's base URL (identity at /identity, images at /image)."""
        self.api_url = api_url.rstrip("/")
        self.user = user
        self._password = password
        self._token = ""
        self._expires = 0.0

    async def _login(self, http: aiohttp.ClientSession) -> str:
        if self._token and time.time() < self._expires - 60:
            return self._token
        auth = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.user,
                            "domain": {"id": "default"},
                            "password": self._password,
                        }
                    },
                },
                "scope": {"system": {"all": True}},
            }
        }
        async with http.post(f"{self.api_url}/identity/v3/auth/tokens", json=auth) as resp:
            if resp.status != 201:
                raise ImageFetchError(f"hostd's login as {self.user}: HTTP {resp.status}")
            body = await resp.json()
            self._token = resp.headers["X-Subject-Token"]
        expires = body["token"]["expires_at"].replace("Z", "+00:00")
        self._expires = dt.datetime.fromisoformat(expires).timestamp()
        return self._token

    @contextlib.asynccontextmanager
    async def _request(
        self, http: aiohttp.ClientSession, method: str, url: str, path: Path | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The answer to one request as hostd (logged in again once if the token was
        refused); ``path``: a file sent as the body."""
        for attempt in range(2):
            headers = {"X-Auth-Token": await self._login(http)}
            with contextlib.ExitStack() as files:
                data = files.enter_context(path.open("rb")) if path is not None else None
                if method == "PUT":
                    headers["Content-Type"] = "application/octet-stream"
                async with http.request(method, url, data=data, headers=headers) as resp:
                    if resp.status == 401 and attempt == 0:
                        self._token = ""  # refused: log in again once
                        continue
                    yield resp
                    return

    async def read(self, uid: str) -> AsyncIterator[bytes]:
        """The data of image ``uid``, in chunks."""
        url = f"{self.api_url}/image/v2/images/{uid}/file"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                self._request(http, "GET", url) as resp,
            ):
                if resp.status == 404:
                    raise ImageError(f"Image {uid} could not be found.")  # Nova's fault
                if resp.status != 200:
                    raise ImageFetchError(f"GET {url}: HTTP {resp.status}")
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    yield chunk
        except aiohttp.ClientError as exc:
            raise ImageFetchError(f"GET {url}: {exc}") from None

    async def upload(self, uid: str, path: Path | None) -> None:
        """Uploads the file at ``path`` (None: no data, a simulated disk) as image ``uid``'s
        data."""
        url = f"{self.api_url}/image/v2/images/{uid}/file"
        try:
            async with (
                aiohttp.ClientSession() as http,
                self._request(http, "PUT", url, path) as resp,
            ):
                if resp.status in (404, 409):
                    raise ImageError(f"PUT {url}: HTTP {resp.status}")
                if resp.status != 204:
                    raise ImageFetchError(f"PUT {url}: HTTP {resp.status}")
        except aiohttp.ClientError as exc:
            raise ImageFetchError(f"PUT {url}: {exc}") from None
