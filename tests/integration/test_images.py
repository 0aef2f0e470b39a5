"""hostd's image cache: fetched once, checksums and sizes verified, nothing half-written kept."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from aiohttp import web

from hostd.images import ImageCache, ImageError, ImageFetchError
from tests.conftest import serving

DATA = b"desired image data\n" * 1000


def image(url: str, checksum: str = "", **extra: object) -> dict:
    return {"uid": "u1", "name": "tiny", "url": url, "checksum": checksum, **extra}


async def test_file_images_verified_and_cached(tmp_path: Path) -> None:
    src = tmp_path / "src.img"
    src.write_bytes(DATA)
    cache = ImageCache(tmp_path / "cache")
    sha = "sha256:" + hashlib.sha256(DATA).hexdigest()
    path = await cache.fetch(image(src.as_uri(), sha, sizeBytes=len(DATA)))
    assert path.read_bytes() == DATA
    src.unlink()  # cached: not read again
    assert await cache.fetch(image(src.as_uri(), sha)) == path
    md5 = hashlib.md5(DATA).hexdigest()
    src.write_bytes(DATA)
    other = await cache.fetch(image(src.as_uri(), md5))
    assert other != path and other.read_bytes() == DATA  # another checksum: fetched anew


async def test_bad_checksum_or_size_keeps_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src.img"
    src.write_bytes(DATA)
    cache = ImageCache(tmp_path / "cache")
    with pytest.raises(ImageError, match="does not match"):
        await cache.fetch(image(src.as_uri(), "sha256:" + "0" * 64))
    with pytest.raises(ImageError, match="expected 5"):
        await cache.fetch(image(src.as_uri(), sizeBytes=5))
    assert list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(ImageFetchError, match="cannot read"):
        await cache.fetch(image((tmp_path / "missing.img").as_uri()))
    with pytest.raises(ImageError, match="unsupported"):
        await cache.fetch(image("ftp://example.invalid/x"))


async def test_http_image_fetched_once_by_concurrent_callers(tmp_path: Path) -> None:
    requests = 0

    async def serve(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        await asyncio.sleep(0.05)
        return web.Response(body=DATA)

    app = web.Application()
    app.router.add_get("/tiny.img", serve)
    async with serving(app) as base:
        cache = ImageCache(tmp_path / "cache")
        img = image(f"{base}/tiny.img", hashlib.md5(DATA).hexdigest())
        paths = await asyncio.gather(*(cache.fetch(img) for _ in range(5)))
        assert len(set(paths)) == 1 and paths[0].read_bytes() == DATA
        assert requests == 1
        with pytest.raises(ImageFetchError, match="HTTP 404"):
            await cache.fetch(image(f"{base}/nope", uid="u2"))
