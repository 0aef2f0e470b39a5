"""A deadline on request bodies: a client that stops sending one is answered 408 and dropped.

aiohttp runs a handler once the headers are in and has no timeout on reading
the body, so a request that declares more bytes (``Content-Length``) than it
sends held its connection, and the handler, open for as long as the client
liked. Every listener's root application puts ``body_deadline`` first.

Owns: the middleware that, while a request's body is still arriving, gives
the handler ``seconds`` from the last byte received; when the body stalls
that long the handler is cancelled and the request is answered 408 with
``Connection: close``. A slow body that keeps moving is not cut.

Must never: buffer a body (uploads stream through untouched), or cut a
handler once its body is complete (the deadline is lifted at the body's end).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.typedefs import Handler, Middleware

#: seconds a request body may stall (no byte arriving) by default
DEFAULT_SECONDS = 10.0


def body_deadline(seconds: float = DEFAULT_SECONDS) -> Middleware:
    """The middleware; ``seconds`` without a byte of the body ends the request (408)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)
        try:
            async with asyncio.timeout(seconds) as deadline:
                watcher = asyncio.create_task(_follow(request.content, deadline, seconds))
                try:
                    return await handler(request)
                finally:
                    watcher.cancel()
        except TimeoutError:
            if not deadline.expired():
                raise  # the handler's own
            return await _timed_out(request, seconds)

    return middleware


async def _follow(content: StreamReader, deadline: asyncio.Timeout, seconds: float) -> None:
    """Moves ``deadline`` to ``seconds`` after each byte of the body; lifts it at the end."""
    loop = asyncio.get_running_loop()
    seen = content.total_bytes
    step = min(seconds / 10, 1.0)
    while not content.is_eof() and content.exception() is None:
        await asyncio.sleep(step)
        if content.total_bytes != seen:
            seen = content.total_bytes
            deadline.reschedule(loop.time() + seconds)
    deadline.reschedule(None)


async def _timed_out(request: web.Request, seconds: float) -> web.StreamResponse:
    """Sends the 408 and closes the connection at once (aiohttp would otherwise linger,
    reading the rest of the body, before closing)."""
    response = web.Response(
        status=408,
        text=f"the request body stalled: no byte in {seconds:g} seconds\n",
        headers={"Connection": "close"},
    )
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()  # flushes what is written, then closes
    return response
