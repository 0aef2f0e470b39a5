"""The metadata proxy of one host: guests' requests to 169.254.169.254, passed on signed.

A guest's request to ``169.254.169.254:80`` is redirected (``nat/desired-pre``)
to this proxy on its network's gateway. The proxy knows the caller by the
gateway it came to and its source address (the port of that network with that
address, among this host's assignments), and passes the request on to the
metadata service with ``X-Instance-ID`` and ``X-Instance-ID-Signature`` (an
HMAC-SHA256 of the id with the shared secret), as Nova's metadata proxy does.

Owns: one listening socket per gateway (made in the guests' namespace), the
caller look-up and the forwarding; a guest whose request body stalls is
answered 408 and dropped (``body_timeout``).

Must never: forward a request it cannot tie to exactly one instance here;
take the instance id from the guest.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import aiohttp
from aiohttp import web

from hostd.net.netns import Namespace
from state import instance_signature

log = logging.getLogger(__name__)

#: (gateway address the request came to, caller's address) -> instance uid
Caller = Callable[[str, str], str | None]


#: seconds a guest's request body may take to arrive whole (guests send a few hundred bytes)
BODY_TIMEOUT = 10.0


class MetadataProxy:
    def __init__(
        self,
        ns: Namespace,
        port: int,
        upstream: str,
        secret: str,
        caller: Caller,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        """``body_timeout``: a guest whose request body has not arrived whole in that many
        seconds is answered 408 and its connection closed."""
        self.body_timeout = body_timeout
        self.ns = ns
        self.port = port
        self.upstream = upstream.rstrip("/")
        self.secret = secret
        self.caller = caller
        self._runner: web.AppRunner | None = None
        self._sites: dict[str, web.SockSite] = {}
        self._session: aiohttp.ClientSession | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        local = request.transport.get_extra_info("sockname") if request.transport else None
        peer = request.remote or ""
        uid = self.caller(local[0], peer) if local else None
        if uid is None:
            log.warning("metadata request from %s: no instance of this host has that address", peer)
            return web.Response(status=404, text="no instance has this address\n")
        assert self._session is not None
        headers = {
            "X-Instance-ID": uid,
            "X-Instance-ID-Signature": instance_signature.sign(self.secret, uid),
            "X-Forwarded-For": peer,
        }
        for name in ("Content-Type", "Accept"):
            if name in request.headers:
                headers[name] = request.headers[name]
        try:
            async with asyncio.timeout(self.body_timeout):
                data = await request.read()
        except TimeoutError:
            log.warning("metadata request from %s: its body stalled", peer)
            return await _timed_out(request, self.body_timeout)
        try:
            async with self._session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=data
            ) as reply:
                body = await reply.read()
                return web.Response(
                    status=reply.status,
                    body=body,
                    content_type=reply.content_type,
                )
        except aiohttp.ClientError as exc:
            log.warning("metadata service unreachable: %s", exc)
            return web.Response(status=502, text="metadata service unreachable\n")

    async def _setup(self) -> web.AppRunner:
        if self._runner is None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            # what a handler left unread is drained no longer than a body may take
            self._runner = web.AppRunner(app, access_log=None, lingering_time=self.body_timeout)
            await self._runner.setup()
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._runner

    async def serve(self, gateways: set[str]) -> None:
        """Listens on exactly these gateway addresses."""
        runner = await self._setup()
        for gone in set(self._sites) - gateways:
            await self._sites.pop(gone).stop()
        for gateway in sorted(gateways - set(self._sites)):
            sock: socket.socket = self.ns.listener(gateway, self.port)
            site = web.SockSite(runner, sock)
            await site.start()
            self._sites[gateway] = site

    async def close(self) -> None:
        await self.serve(set())
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _timed_out(request: web.Request, seconds: float) -> web.StreamResponse:
    """Sends a 408 and closes the connection at once (aiohttp would linger reading first)."""
    response = web.Response(
        status=408,
        text=f"the request body did not arrive in {seconds:g} seconds\n",
        headers={"Connection": "close"},
    )
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response
