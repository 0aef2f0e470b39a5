"""Async client for etcd's v3 JSON gateway (``/v3/...``), the wire under the store.

Owns: HTTP calls to etcd (range, put, delete, txn, compaction, leases, watch
streams), base64 and int64-as-string encoding, and turning every transport or
server failure into ``state.errors``. It speaks the same gateway etcd3gw
speaks, but without blocking threads: the API server and reconcilers run on
one event loop and need hundreds of requests in flight.

Must never: know about resources, kinds or key layout (that is ``store``),
retry on its own (callers decide), or swallow an error.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from state.errors import Conflict, DesiredError, Gone, NotFound, Unavailable
from state.http1 import Http1Pool, HttpError

# gRPC status codes the gateway reports in {"code": N}.
_GRPC_OUT_OF_RANGE = 11
_GRPC_NOT_FOUND = 5
_GRPC_UNAVAILABLE = 14
_GRPC_DEADLINE = 4
#: seconds of silence after which a watch stream counts as dead and is resumed
WATCH_SILENCE = 30.0


def _b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
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

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": _b64(self.key), "target": self.target, "result": self.result}
        if self.target == "VALUE":
            assert isinstance(self.value, bytes)
            out["value"] = _b64(self.value)
        else:
            out[
                {"MOD": "mod_revision", "CREATE": "create_revision", "VERSION": "version"}[
                    self.target
                ]
            ] = str(self.value)
        return out


def mod_revision_is(key: bytes, revision: int) -> Compare:
    return Compare(key, "MOD", "EQUAL", revision)


def absent(key: bytes) -> Compare:
    return Compare(key, "CREATE", "EQUAL", 0)


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0

    def to_json(self) -> dict[str, Any]:
        req: dict[str, Any] = {"key": _b64(self.key), "value": _b64(self.value)}
        if self.lease:
            req["lease"] = str(self.lease)
        return {"request_put": req}


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes
    range_end: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        req: dict[str, Any] = {"key": _b64(self.key)}
        if self.range_end is not None:
            req["range_end"] = _b64(self.range_end)
        return {"request_delete_range": req}


@dataclass(frozen=True, slots=True)
class Get:
    key: bytes
    range_end: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        req: dict[str, Any] = {"key": _b64(self.key)}
        if self.range_end is not None:
            req["range_end"] = _b64(self.range_end)
        return {"request_range": req}


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    #: one entry per op of the branch taken; a Get's entry is its KeyValues
    responses: list[list[KeyValue] | None]


class EtcdClient:
    """One connection pool to one etcd endpoint's JSON gateway."""

    def __init__(self, url: str, *, timeout: float = 10.0, pool: int = 128) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 3.0))
        self._pool = pool
        #: unary calls (kv, txn, lease) go through a lean keep-alive pool
        self._unary: Http1Pool | None = None
        #: watch streams through aiohttp
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

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # watch streams hold a connection each for as long as they live: no cap, or
                # the watches beyond it would wait forever (hostd runs one per simulated host)
                connector=aiohttp.TCPConnector(limit=0),
                timeout=self._timeout,
                json_serialize=json.dumps,
            )
        return self._session

    async def close(self) -> None:
        if self._unary is not None:
            await self._unary.close()
            self._unary = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._unary is None:
            self._unary = Http1Pool(self.url, size=self._pool, timeout=self._timeout.total or 10.0)
        try:
            _, raw = await self._unary.post(path, json.dumps(body, separators=(",", ":")).encode())
            data = json.loads(raw)
        except (HttpError, ValueError) as exc:
            raise Unavailable(f"etcd at {self.url} is unreachable ({exc}); retry later") from exc
        if not isinstance(data, dict):
            raise Unavailable(f"etcd at {self.url} answered {path} with non-JSON; retry later")
        if "error" in data or ("code" in data and "header" not in data):
            raise _gateway_error(data)
        return data

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
        body: dict[str, Any] = {"key": _b64(key)}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        if limit:
            body["limit"] = str(limit)
        if revision:
            body["revision"] = str(revision)
        if keys_only:
            body["keys_only"] = True
        if count_only:
            body["count_only"] = True
        data = await self._call("/v3/kv/range", body)
        return RangeResult(
            kvs=[KeyValue.from_json(kv) for kv in data.get("kvs", [])],
            revision=int(data["header"]["revision"]),
            more=bool(data.get("more", False)),
            count=int(data.get("count", 0)),
        )

    async def get(self, key: bytes) -> KeyValue | None:
        res = await self.range(key)
        return res.kvs[0] if res.kvs else None

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        data = await self._call("/v3/kv/put", body)
        return int(data["header"]["revision"])

    async def delete(self, key: bytes, range_end: bytes | None = None) -> int:
        body: dict[str, Any] = {"key": _b64(key)}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        data = await self._call("/v3/kv/deleterange", body)
        return int(data.get("deleted", 0))

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        data = await self._call(
            "/v3/kv/txn",
            {
                "compare": [c.to_json() for c in compare],
                "success": [o.to_json() for o in success],
                "failure": [o.to_json() for o in failure],
            },
        )
        responses: list[list[KeyValue] | None] = []
        for r in data.get("responses", []):
            rng = r.get("response_range")
            responses.append(
                [KeyValue.from_json(kv) for kv in rng.get("kvs", [])] if rng is not None else None
            )
        return TxnResult(
            succeeded=bool(data.get("succeeded", False)),
            revision=int(data["header"]["revision"]),
            responses=responses,
        )

    async def compact(self, revision: int) -> None:
        await self._call("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    async def revision(self) -> int:
        """The store's current revision."""
        res = await self.range(b"\0", count_only=True)
        return res.revision

    # --- leases ----------------------------------------------------------

    async def lease_grant(self, ttl: int) -> int:
        data = await self._call("/v3/lease/grant", {"TTL": str(ttl)})
        return int(data["ID"])

    async def lease_keepalive(self, lease: int) -> int:
        """Refreshes the lease once; returns the TTL left, raising NotFound if it expired."""
        data = await self._call("/v3/lease/keepalive", {"ID": str(lease)})
        ttl = int(data.get("result", {}).get("TTL", 0))
        if ttl <= 0:
            raise NotFound(f"lease {lease:x} has expired")
        return ttl

    async def lease_revoke(self, lease: int) -> None:
        try:
            await self._call("/v3/lease/revoke", {"ID": str(lease)})
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
                        err = msg["error"]
                        raise _gateway_error(err if isinstance(err, dict) else msg)
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


def _gateway_error(data: dict[str, Any]) -> DesiredError:
    code = int(data.get("code", 0))
    message = str(data.get("message") or data.get("error") or data)
    if code == _GRPC_OUT_OF_RANGE or "compacted" in message:
        return Gone(message)
    if code == _GRPC_NOT_FOUND or "lease not found" in message:
        return NotFound(message)
    if code in (_GRPC_UNAVAILABLE, _GRPC_DEADLINE):
        return Unavailable(f"etcd: {message}; retry later")
    if "too many operations" in message or "duplicate key" in message:
        return Conflict(message)
    return Unavailable(f"etcd: {message}")
