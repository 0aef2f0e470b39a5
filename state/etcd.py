"""Async client for etcd's v3 API, the wire under the store.

Owns: calls to etcd (range, put, delete, txn, compaction, leases) over one
gRPC channel with the messages of ``state.etcd_wire``; watch streams over
etcd's JSON gateway (``/v3/watch``); turning every transport or server
failure into ``state.errors``.

Why two wires (measured, BENCHMARKS.md "Session 7"): through the JSON gateway
etcd spent about twice the CPU per call (250 against 115 µs a put), and etcd's
CPU is what a burst of instances waits on. But a gRPC stream hands each
message to Python on its own, and each hand-over waits for the GIL: with
another thread busy in the process (the conductor's SQL), a watch read through
``grpc.aio`` fell behind etcd by seconds, where the gateway's HTTP stream
hands over every message that has arrived in one read.

Must never: know about resources, kinds or key layout (that is ``store``),
retry on its own (callers decide), or swallow an error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import grpc

from state.errors import Conflict, DesiredError, Gone, NotFound, Unavailable
from state.etcd_wire import COMPARE_RESULT, COMPARE_TARGET, MESSAGE, METHODS

#: gRPC's status codes by number (the JSON gateway reports {"code": N})
_STATUS = {status.value[0]: status for status in grpc.StatusCode}
#: seconds of silence after which a watch stream counts as dead and is resumed
WATCH_SILENCE = 30.0


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix``."""
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return b"\0"


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_wire(cls, kv: Any) -> KeyValue:
        return cls(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)

    @classmethod
    def from_json(cls, kv: dict[str, Any]) -> KeyValue:
        return cls(
            key=_unb64(kv.get("key")),
            value=_unb64(kv.get("value")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            version=int(kv.get("version", 0)),
            lease=int(kv.get("lease", 0)),
        )


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    revision: int
    more: bool
    count: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change: ``kv.value`` is empty and ``deleted`` true for a delete."""

    kv: KeyValue
    deleted: bool
    prev: KeyValue | None


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """What one watch response carries: events, or only a progress revision."""

    revision: int
    events: list[WatchEvent]


# --- transaction building blocks -------------------------------------------


@dataclass(frozen=True, slots=True)
class Compare:
    """A txn guard. ``target`` is MOD, CREATE, VERSION or VALUE."""

    key: bytes
    target: str
    result: str
    value: int | bytes

    def to_wire(self) -> Any:
        field = {"MOD": "mod_revision", "CREATE": "create_revision", "VERSION": "version"}.get(
            self.target, "value"
        )
        return MESSAGE["Compare"](
            key=self.key,
            target=COMPARE_TARGET[self.target],
            result=COMPARE_RESULT[self.result],
            **{field: self.value},
        )


def mod_revision_is(key: bytes, revision: int) -> Compare:
    return Compare(key, "MOD", "EQUAL", revision)


def absent(key: bytes) -> Compare:
    return Compare(key, "CREATE", "EQUAL", 0)


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0

    def to_wire(self) -> Any:
        put = MESSAGE["PutRequest"](key=self.key, value=self.value, lease=self.lease)
        return MESSAGE["RequestOp"](request_put=put)


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes
    range_end: bytes | None = None

    def to_wire(self) -> Any:
        delete = MESSAGE["DeleteRangeRequest"](key=self.key, range_end=self.range_end or b"")
        return MESSAGE["RequestOp"](request_delete_range=delete)


@dataclass(frozen=True, slots=True)
class Get:
    key: bytes
    range_end: bytes | None = None

    def to_wire(self) -> Any:
        get = MESSAGE["RangeRequest"](key=self.key, range_end=self.range_end or b"")
        return MESSAGE["RequestOp"](request_range=get)


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    #: one entry per op of the branch taken; a Get's entry is its KeyValues
    responses: list[list[KeyValue] | None]


class EtcdClient:
    """One gRPC channel to one etcd endpoint (made on first use, for the event loop using it)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        parts = urlsplit(self.url)
        self._target = f"{parts.hostname or '127.0.0.1'}:{parts.port or 2379}"
        self._tls = parts.scheme == "https"
        self._channel: grpc.aio.Channel | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unary: dict[str, Any] = {}
        #: watch streams through etcd's JSON gateway (see the module's docstring)
        self._session: aiohttp.ClientSession | None = None

    def local_address(self) -> str:
        """This machine's address on the route to etcd (the one other hosts likely reach it
        by); connecting a UDP socket picks the route and sends nothing."""
        parts = urlsplit(self.url)
        try:
            family, kind, _, _, address = socket.getaddrinfo(
                parts.hostname or "127.0.0.1", parts.port or 2379, type=socket.SOCK_DGRAM
            )[0]
            with socket.socket(family, kind) as probe:
                probe.connect(address)
                return str(probe.getsockname()[0])
        except OSError:
            return ""

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open(self) -> grpc.aio.Channel:
        """The channel, made anew when the running event loop is not the one it was made
        for (a gRPC channel belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._channel is None or self._loop is not loop:
            options = [
                # no size limits: a full list of a kind can exceed gRPC's default of 4 MiB
                ("grpc.max_receive_message_length", -1),
                # after etcd was away, reach it again within a second of its return (gRPC's
                # own backoff grows to two minutes, and calls fail until it reconnects)
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ]
            self._channel = (
                grpc.aio.secure_channel(self._target, grpc.ssl_channel_credentials(), options)
                if self._tls
                else grpc.aio.insecure_channel(self._target, options)
            )
            self._loop = loop
            self._unary = {}
        return self._channel

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # watch streams hold a connection each for as long as they live: no cap, or
                # the watches beyond it would wait forever (hostd runs one per simulated host)
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=self._timeout, connect=min(self._timeout, 3.0)),
                json_serialize=json.dumps,
            )
        return self._session

    async def close(self) -> None:
        if self._channel is not None:
            if self._loop is asyncio.get_running_loop():
                await self._channel.close()
            self._channel = None
            self._unary = {}
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _method(self, path: str, kind: str) -> Any:
        request, response = METHODS[path]
        channel = self._open()
        make = channel.unary_unary if kind == "unary" else channel.stream_stream
        return make(
            path,
            request_serializer=MESSAGE[request].SerializeToString,
            response_deserializer=MESSAGE[response].FromString,
        )

    async def _call(self, path: str, request: Any) -> Any:
        self._open()
        call = self._unary.get(path)
        if call is None:
            call = self._unary[path] = self._method(path, "unary")
        try:
            return await call(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: grpc.aio.AioRpcError) -> DesiredError:
        return _etcd_error(self.url, exc.code(), exc.details() or str(exc.code()))

    # --- kv --------------------------------------------------------------

    async def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        *,
        limit: int = 0,
        revision: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> RangeResult:
        request = MESSAGE["RangeRequest"](
            key=key,
            range_end=range_end or b"",
            limit=limit,
            revision=revision,
            keys_only=keys_only,
            count_only=count_only,
        )
        data = await self._call("/etcdserverpb.KV/Range", request)
        return RangeResult(
            kvs=[KeyValue.from_wire(kv) for kv in data.kvs],
            revision=data.header.revision,
            more=data.more,
            count=data.count,
        )

    async def get(self, key: bytes) -> KeyValue | None:
        res = await self.range(key)
        return res.kvs[0] if res.kvs else None

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        request = MESSAGE["PutRequest"](key=key, value=value, lease=lease)
        data = await self._call("/etcdserverpb.KV/Put", request)
        return int(data.header.revision)

    async def delete(self, key: bytes, range_end: bytes | None = None) -> int:
        request = MESSAGE["DeleteRangeRequest"](key=key, range_end=range_end or b"")
        data = await self._call("/etcdserverpb.KV/DeleteRange", request)
        return int(data.deleted)

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        request = MESSAGE["TxnRequest"](
            compare=[c.to_wire() for c in compare],
            success=[o.to_wire() for o in success],
            failure=[o.to_wire() for o in failure],
        )
        data = await self._call("/etcdserverpb.KV/Txn", request)
        responses: list[list[KeyValue] | None] = [
            [KeyValue.from_wire(kv) for kv in r.response_range.kvs]
            if r.WhichOneof("response") == "response_range"
            else None
            for r in data.responses
        ]
        return TxnResult(
            succeeded=data.succeeded, revision=data.header.revision, responses=responses
        )

    async def compact(self, revision: int) -> None:
        request = MESSAGE["CompactionRequest"](revision=revision, physical=True)
        await self._call("/etcdserverpb.KV/Compact", request)

    async def revision(self) -> int:
        """The store's current revision."""
        res = await self.range(b"\0", count_only=True)
        return res.revision

    # --- leases ----------------------------------------------------------

    async def lease_grant(self, ttl: int) -> int:
        data = await self._call(
            "/etcdserverpb.Lease/LeaseGrant", MESSAGE["LeaseGrantRequest"](TTL=ttl)
        )
        if data.error:
            raise Unavailable(f"etcd: {data.error}")
        return int(data.ID)

    async def lease_keepalive(self, lease: int) -> int:
        """Refreshes the lease once; returns the TTL left, raising NotFound if it expired."""
        call = self._method("/etcdserverpb.Lease/LeaseKeepAlive", "stream")(timeout=self._timeout)
        try:
            await call.write(MESSAGE["LeaseKeepAliveRequest"](ID=lease))
            await call.done_writing()
            data = await call.read()
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        finally:
            call.cancel()
        ttl = 0 if data is grpc.aio.EOF else int(data.TTL)
        if ttl <= 0:
            raise NotFound(f"lease {lease:x} has expired")
        return ttl

    async def lease_revoke(self, lease: int) -> None:
        try:
            await self._call(
                "/etcdserverpb.Lease/LeaseRevoke", MESSAGE["LeaseRevokeRequest"](ID=lease)
            )
        except NotFound:
            pass

    # --- watch -----------------------------------------------------------

    async def watch(
        self, key: bytes, range_end: bytes | None, start_revision: int
    ) -> AsyncIterator[WatchBatch]:
        """Streams changes from ``start_revision`` on, with periodic progress notices.

        Raises ``Gone`` if that revision is compacted and ``Unavailable`` when the
        stream breaks; the caller resumes from the last revision it saw + 1.
        """
        create: dict[str, Any] = {
            "key": _b64(key),
            "start_revision": str(start_revision),
            "progress_notify": True,
            "prev_kv": False,
        }
        if range_end is not None:
            create["range_end"] = _b64(range_end)
        # a stream that says nothing for this long is dead (etcd sends progress notices to
        # idle watches: every 5 s from the etcd desired starts; see docs/etcd.md)
        timeout = aiohttp.ClientTimeout(total=None, connect=3.0, sock_read=WATCH_SILENCE)
        try:
            async with self._http().post(
                self.url + "/v3/watch", json={"create_request": create}, timeout=timeout
            ) as resp:
                async for line in _lines(resp.content):
                    msg = json.loads(line)
                    if "error" in msg:
                        err = msg["error"] if isinstance(msg["error"], dict) else msg
                        message = str(err.get("message") or err.get("error") or err)
                        raise _etcd_error(self.url, _STATUS.get(int(err.get("code", 0))), message)
                    result = msg.get("result", {})
                    if result.get("compact_revision"):
                        raise Gone(
                            f"revision {start_revision} was compacted "
                            f"(oldest kept: {result['compact_revision']})"
                        )
                    if result.get("canceled"):
                        reason = result.get("cancel_reason")
                        raise Unavailable(f"etcd cancelled the watch: {reason}")
                    header = result.get("header", {})
                    events = [
                        WatchEvent(
                            kv=KeyValue.from_json(ev["kv"]),
                            deleted=ev.get("type") == "DELETE",
                            prev=KeyValue.from_json(ev["prev_kv"]) if ev.get("prev_kv") else None,
                        )
                        for ev in result.get("events", [])
                    ]
                    if result.get("created") and not events:
                        continue
                    yield WatchBatch(revision=int(header.get("revision", 0)), events=events)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise Unavailable(f"watch on etcd at {self.url} broke: {exc}") from exc
        except RuntimeError as exc:  # aiohttp's "Connection closed.": the client was closed
            raise Unavailable(f"watch on etcd at {self.url} ended: {exc}") from exc
        raise Unavailable(f"etcd at {self.url} closed the watch stream")


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-delimited messages of any length.

    etcd folds many events into one watch response; a line can be megabytes,
    far beyond the limit of aiohttp's own line reader.
    """
    buf = bytearray()
    async for chunk in stream.iter_any():
        buf += chunk
        while (end := buf.find(b"\n")) >= 0:
            line = bytes(buf[:end]).strip()
            del buf[: end + 1]
            if line:
                yield line
    if buf.strip():
        yield bytes(buf).strip()


def _etcd_error(url: str, code: grpc.StatusCode | None, message: str) -> DesiredError:
    """What etcd's answer (a gRPC status, from a call or from the JSON gateway) means."""
    if code == grpc.StatusCode.OUT_OF_RANGE or "compacted" in message:
        return Gone(message)
    if code == grpc.StatusCode.NOT_FOUND or "lease not found" in message:
        return NotFound(message)
    if "too many operations" in message or "duplicate key" in message:
        return Conflict(message)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"etcd at {url} is unreachable ({message}); retry later")
    return Unavailable(f"etcd: {message}")
