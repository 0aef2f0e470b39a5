"""hostd's image cache: each image fetched once per host, its checksum verified.

Owns: ``<cache>/<image uid>-<digest of url and checksum>`` files, fetched from the image's ``url``
(``file://``, ``http://``, ``https://``), or from the image service when it
has no url (``hostd.image_service``), into a temporary file, checked
against ``checksum`` (``sha256:<hex>`` or an MD5 hex digest) and
``sizeBytes``, given the tree's owner and mode (``hostd.file_access``: root's
and QEMU's alone), then renamed into place, so that a file in the cache is
always whole and verified. Concurrent requests for one image share one fetch.

Must never: keep a file whose checksum does not match, or follow a URL
given by anything but an Image spec.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import aiohttp

from hostd.file_access import ROOT_ONLY, FileAccess
from state.errors import DesiredError, Transient

_CHUNK = 1 << 20


class ImageError(DesiredError):
    """The image cannot be used as it is (bad checksum, size or URL): retrying will not help."""

    status = 422


class ImageFetchError(Transient):
    """The image could not be read now (its server or file is away); retried."""


class _Digest:
    def __init__(self, checksum: str) -> None:
        algo, _, want = checksum.partition(":") if ":" in checksum else ("md5", "", checksum)
        self.want = want.lower()
        self.hash = hashlib.new(algo)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.hash.update(chunk)
        self.size += len(chunk)


class Source(Protocol):
    """Where images without a url come from (the image service)."""

    def read(self, uid: str) -> AsyncIterator[bytes]: ...


class ImageCache:
    def __init__(
        self, root: Path, service: Source | None = None, access: FileAccess = ROOT_ONLY
    ) -> None:
        """``service``: where images without a url are read from (None: nowhere);
        ``access``: who may read the files besides root (QEMU)."""
        self.root = root
        self.service = service
        self.access = access
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, image: dict[str, Any]) -> Path:
        """Where the image's data is cached: by uid and by what the data must be, so that a
        changed url or checksum is fetched anew."""
        source = hashlib.sha256(f"{image.get('url')}\n{image.get('checksum')}".encode())
        return self.root / f"{image['uid']}-{source.hexdigest()[:16]}"

    async def fetch(self, image: dict[str, Any]) -> Path:
        """The cached file of ``image`` (its spec fields and ``uid``), fetching it if absent."""
        path = self.path(image)
        if path.exists():
            return path
        lock = self._locks.setdefault(path.name, asyncio.Lock())
        async with lock:
            if not path.exists():
                await self._fetch(image, path)
        return path

    async def _fetch(self, image: dict[str, Any], path: Path) -> None:
        url = image.get("url") or ""
        checksum = image.get("checksum") or ""
        if url:
            chunks = _read(url)
        elif self.service is not None and checksum:
            chunks = self.service.read(image["uid"])
        else:
            raise ImageError(f"image {image.get('name')!r} has no url to fetch its data from")
        self.access.directory(self.root)
        part = path.with_suffix(".part")
        digest = _Digest(checksum) if checksum else None
        try:
            with os.fdopen(_private(part), "wb") as out:
                async for chunk in chunks:
                    out.write(chunk)
                    if digest:
                        digest.update(chunk)
            size = part.stat().st_size
            want_size = image.get("sizeBytes")
            if want_size is not None and size != want_size:
                raise ImageError(f"image {image.get('name')!r}: {size} bytes, expected {want_size}")
            if digest and digest.hash.hexdigest() != digest.want:
                raise ImageError(
                    f"image {image.get('name')!r}: checksum {digest.hash.hexdigest()} does not match {checksum}"
                )
            self.access.file(part)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)


def _private(path: Path) -> int:
    """A new file for root alone, until it is whole and given the tree's access."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)


async def _read(url: str) -> AsyncIterator[bytes]:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        try:
            f = await asyncio.to_thread(open, unquote(parsed.path), "rb")
        except OSError as exc:
            raise ImageFetchError(f"cannot read {url}: {exc.strerror}") from None
        with f:
            loop = asyncio.get_running_loop()
            while chunk := await loop.run_in_executor(None, f.read, _CHUNK):
                yield chunk
        return
    if parsed.scheme not in ("http", "https"):
        raise ImageError(f"unsupported image url {url!r}")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as s,
            s.get(url) as resp,
        ):
            if resp.status >= 400:
                raise ImageFetchError(f"GET {url}: HTTP {resp.status}")
            async for chunk in resp.content.iter_chunked(_CHUNK):
                yield chunk
    except aiohttp.ClientError as exc:
        raise ImageFetchError(f"GET {url}: {exc}") from None
