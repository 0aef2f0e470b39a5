"""A small keep-alive HTTP/1.1 client for etcd's unary JSON calls.

Owns: a pool of persistent loopback/LAN connections, one request at a time
per connection, bodies with Content-Length or chunked encoding. etcd's
gateway answers every unary call with a short JSON body; doing just that,
without a general client's machinery, costs a fraction of the CPU, and the
API server spends most of its time in these calls.

Must never: follow redirects, speak TLS, or reuse a connection after an
error (it is closed, and the caller sees the error).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class HttpError(Exception):
    """The connection failed or the response was malformed."""


class Http1Pool:
    def __init__(self, url: str, *, size: int = 64, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs are supported here, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)
        self._host_header = f"{self.host}:{self.port}".encode()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POSTs a JSON body; returns (status, body)."""
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            fresh = conn is None
            for attempt in (0, 1):
                if conn is None:
                    conn = await self._open()
                try:
                    async with asyncio.timeout(self.timeout):
                        result = await self._exchange(conn, path, body)
                except (OSError, HttpError, asyncio.IncompleteReadError) as exc:
                    conn[1].close()
                    conn = None
                    if fresh or attempt == 1:
                        raise HttpError(f"{type(exc).__name__}: {exc}") from exc
                    fresh = (
                        True  # a pooled connection may have been closed by the server: retry once
                    )
                    continue
                except TimeoutError:
                    conn[1].close()
                    raise HttpError(f"no answer within {self.timeout}s") from None
                status, data, keep = result
                if keep:
                    self._idle.append(conn)
                else:
                    conn[1].close()
                return status, data
        raise HttpError("unreachable")  # pragma: no cover - the loop always returns or raises

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(min(self.timeout, 3.0)):
                return await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc

    async def _exchange(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], path: str, body: bytes
    ) -> tuple[int, bytes, bool]:
        reader, writer = conn
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self._host_header, len(body), body)
        )
        await writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        try:
            status = int(status_line.split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise HttpError(f"bad status line {status_line[:60]!r}") from None
        length = -1
        chunked = False
        keep = True
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                keep = False
        if chunked:
            data = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data += await reader.readexactly(size)
                await reader.readexactly(2)
            return status, bytes(data), keep
        if length < 0:
            return status, await reader.read(), False
        return status, await reader.readexactly(length), keep

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()
