"""The host's metadata proxy on loopback: requests pass on signed; a stalled body is dropped."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import cast

from aiohttp import web

from fixtures.ports import free_port
from hostd.net.metadata_proxy import MetadataProxy
from hostd.net.netns import Namespace
from state import instance_signature
from tests.conftest import serving

SECRET = "proxy-secret"


class Loopback:
    """Stands in for the guests' namespace: the proxy's listeners are made on loopback."""

    def listener(self, address: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((address, port))
        sock.listen(16)
        sock.setblocking(False)
        return sock


async def upstream(request: web.Request) -> web.Response:
    signed = instance_signature.valid(
        SECRET, request.headers["X-Instance-ID"], request.headers["X-Instance-ID-Signature"]
    )
    return web.Response(text=f"{signed} {await request.text()}")


async def test_a_guest_whose_body_stalls_gets_408_and_is_dropped() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream)
    async with serving(app) as base:
        port = free_port()
        proxy = MetadataProxy(
            cast(Namespace, Loopback()), port, base, SECRET, lambda _gw, _peer: "uid-1", 1.0
        )
        await proxy.serve({"127.0.0.1"})
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 6\r\nConnection: close\r\n\r\nsecret"
            )
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"True secret"), answer

            start = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 100\r\n\r\nhalf"
            )
            answer = await asyncio.wait_for(reader.read(), 15)  # until the proxy closes
            writer.close()
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert time.monotonic() - start < 5
        finally:
            await proxy.close()
