"""The image service's data files: one per image, written whole or not at all.

Owns: ``<image dir>/<image uid>`` files (their owner's alone) and the data
staged for an import under ``<image dir>/staging/`` (``staging()``), written from a
request's body through a ``.part`` file opened exclusively (a second upload
of the same image meanwhile is refused), with the size and the SHA-256 and
MD5 digests of what was written; stopping a write that passes the bytes it
may take (``TooLarge``); the limits on them (``ImageLimits``); reading them
back in chunks; removing them.

Must never: leave a partial file where a whole one is expected, or keep more
of a body than its limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from state.errors import Conflict, DesiredError

_CHUNK = 1 << 20


class TooLarge(DesiredError):
    """An upload passed the bytes it could take (the size cap, or its project's quota)."""

    status = 413
    reason = "RequestEntityTooLarge"


@dataclass(frozen=True)
class ImageLimits:
    """How much image data may be stored (Glance's ``image_size_cap`` and
    ``user_storage_quota``); 0: no limit."""

    #: bytes of one image
    size_cap: int = 10 * 2**30
    #: bytes of all the images of one project
    storage_quota: int = 50 * 2**30


@dataclass(frozen=True)
class Stored:
    size: int
    sha256: str
    md5: str


class ImageData:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, uid: str) -> Path:
        return self.root / uid

    def has(self, uid: str) -> bool:
        return self.path(uid).exists()

    async def write(
        self, uid: str, chunks: AsyncIterator[bytes], limit: int = 0, why: str = ""
    ) -> Stored:
        """Writes the data of image ``uid`` from ``chunks``; Conflict while another write of
        it is under way; ``TooLarge`` (saying ``why``) as soon as more than ``limit`` bytes
        came (0: no limit), nothing kept."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)  # images are their owners' alone; hostd reads them by HTTP
        part = self.path(uid).with_suffix(".part")
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise Conflict(f"image {uid} is being uploaded") from None
        sha256, md5, size = hashlib.sha256(), hashlib.md5(), 0  # md5: Glance's checksum
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    if limit and size + len(chunk) > limit:
                        raise TooLarge(why or f"the image is larger than {limit} bytes")
                    await asyncio.to_thread(out.write, chunk)
                    sha256.update(chunk)
                    md5.update(chunk)
                    size += len(chunk)
            os.replace(part, self.path(uid))
        finally:
            part.unlink(missing_ok=True)
        return Stored(size, sha256.hexdigest(), md5.hexdigest())

    async def read(self, uid: str) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(self.path(uid).open, "rb")
        with f:
            while chunk := await asyncio.to_thread(f.read, _CHUNK):
                yield chunk

    def staging(self) -> ImageData:
        """Where data staged for an import waits until the import stores it."""
        return ImageData(self.root / "staging")

    def remove(self, uid: str) -> None:
        """Removes the image's data, and what was staged of it."""
        self.path(uid).unlink(missing_ok=True)
        (self.root / "staging" / uid).unlink(missing_ok=True)
