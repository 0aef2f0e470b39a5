"""Async client for etcd's v3 API, the wire under the store.

Owns: calls to etcd (range, put, delete, txn, compaction, leases, and the
user and role calls of ``state.etcd_auth``) over one gRPC channel with the
messages of ``state.etcd_wire``; watch streams over etcd's JSON gateway
(``/v3/watch``); TLS with a client certificate and etcd's authentication
(a token got with the user's password, got again when etcd forgets it or
its users change) when given ``Credentials``; turning every transport or
server failure into ``state.errors`` (etcd's "permission denied" into
``Forbidden``, said in the log with the keys asked for).

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
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

import aiohttp
import grpc

from state.errors import Conflict, DesiredError, Forbidden, Gone, NotFound, Unavailable
from state.etcd_tls import Credentials
from state.etcd_wire import COMPARE_RESULT, COMPARE_TARGET, MESSAGE, METHODS

log = logging.getLogger(__name__)

#: gRPC's status codes by number (the JSON gateway reports {"code": N})
_STATUS = {status.value[0]: status for status in grpc.StatusCode}
#: seconds of silence after which a watch stream counts as dead and is resumed
WATCH_SILENCE = 30.0
#: what etcd answers a call whose token it no longer takes (restarted, token expired, or
#: its users and roles changed since): authenticate again and repeat the call once
_STALE_TOKEN = ("invalid auth token", "auth store is old", "user name is empty")


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
    """One gRPC channel to etcd (made on first use, for the event loop using it).

    With ``credentials`` the channel and the watch streams use TLS with the client
    certificate, and, when they name a user, every call carries etcd's token for it."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, credentials: Credentials | None = None
    ) -> None:
        #: the members' client URLs (``url`` may list several, comma-separated); calls go
        #: to the first that answers (gRPC picks among the addresses of ``_target``), a
        #: watch to the next after its member failed
        self.urls = [u.strip().rstrip("/") for u in url.split(",") if u.strip()] or [""]
        self.url = self.urls[0]
        self._watch_at = 0
        self._timeout = timeout
        self._target, self._options = _target(self.urls)
        self._tls = urlsplit(self.url).scheme == "https"
        self.credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unary: dict[str, Any] = {}
        #: etcd's token for the credentials' user; None: etcd has no authentication on
        self._token: str | None = ""
        self._authenticating = asyncio.Lock()
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
                *self._options,
            ]
            self._channel = (
                grpc.aio.secure_channel(self._target, self._channel_credentials(), options)
                if self._tls
                else grpc.aio.insecure_channel(self._target, options)
            )
            self._loop = loop
            self._unary = {}
            self._authenticating = asyncio.Lock()
        return self._channel

    def _channel_credentials(self) -> grpc.ChannelCredentials:
        c = self.credentials
        if c is None:
            return grpc.ssl_channel_credentials()
        return grpc.ssl_channel_credentials(
            c.ca_file.read_bytes(), c.key_file.read_bytes(), c.cert_file.read_bytes()
        )

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self._tls:
            return False
        c = self.credentials
        context = ssl.create_default_context(cafile=str(c.ca_file) if c else None)
        if c is not None:
            context.load_cert_chain(str(c.cert_file), str(c.key_file))
        return context

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # watch streams hold a connection each for as long as they live: no cap, or
                # the watches beyond it would wait forever (hostd runs one per simulated host)
                connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl()),
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
        token = await self._auth_token()
        try:
            return await call(request, timeout=self._timeout, metadata=_metadata(token))
        except grpc.aio.AioRpcError as exc:
            if not self._stale(exc.details() or "", token):
                raise self._error(exc, path, request) from exc
        token = await self._auth_token(stale=token)
        try:
            return await call(request, timeout=self._timeout, metadata=_metadata(token))
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, path, request) from exc

    def _stale(self, message: str, token: str | None) -> bool:
        """Whether etcd refused a call for its token (not for what it asked)."""
        return bool(self.credentials and self.credentials.user) and any(
            m in message for m in _STALE_TOKEN
        )

    async def _auth_token(self, *, stale: str | None = "") -> str | None:
        """etcd's token for this client's user (None without a user, or while etcd has
        authentication off); a new one when ``stale`` is the one held."""
        c = self.credentials
        if c is None or not c.user:
            return None
        if self._token and self._token != stale:
            return self._token
        self._open()  # (its lock belongs to the running event loop)
        async with self._authenticating:
            if self._token and self._token != stale:
                return self._token  # another call authenticated meanwhile
            call = self._unary.get("auth")
            if call is None:
                call = self._unary["auth"] = self._method(
                    "/etcdserverpb.Auth/Authenticate", "unary"
                )
            request = MESSAGE["AuthenticateRequest"](name=c.user, password=c.password)
            try:
                self._token = (await call(request, timeout=self._timeout)).token
            except grpc.aio.AioRpcError as exc:
                if "authentication is not enabled" in (exc.details() or ""):
                    self._token = None
                    return None
                raise self._error(exc, "/etcdserverpb.Auth/Authenticate", None) from exc
            return self._token

    def _error(
        self, exc: grpc.aio.AioRpcError, path: str = "", request: Any = None
    ) -> DesiredError:
        message = exc.details() or str(exc.code())
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED or "permission denied" in message:
            user = self.credentials.user if self.credentials else ""
            asked = f"{path.rsplit('/', 1)[-1]} {_keys_of(request)}"
            log.warning("etcd at %s refused user %r: %s (%s)", self.url, user, message, asked)
            return Forbidden(f"etcd refused {asked} to user {user!r}: {message}")
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED or "authentication failed" in message:
            return Unavailable(f"etcd at {self.url} did not take the credentials: {message}")
        return _etcd_error(self.url, exc.code(), message)

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

    async def revision(self, key: bytes = b"\0") -> int:
        """The store's current revision, read with a count of ``key`` (one the client's
        etcd user may read: the answer is the same for every key)."""
        res = await self.range(key, count_only=True)
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
        token = await self._auth_token()
        call = self._method("/etcdserverpb.Lease/LeaseKeepAlive", "stream")(
            timeout=self._timeout, metadata=_metadata(token)
        )
        try:
            await call.write(MESSAGE["LeaseKeepAliveRequest"](ID=lease))
            await call.done_writing()
            data = await call.read()
        except grpc.aio.AioRpcError as exc:
            if self._stale(exc.details() or "", token):
                self._token = "" if self._token == token else self._token
            raise self._error(exc, "LeaseKeepAlive", None) from exc
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

    def _refused_watch(
        self, refused: dict[str, Any], create: dict[str, Any], token: str | None
    ) -> NoReturn:
        """Raises what etcd's refusal or cancellation of a watch means; a token it no longer
        takes is dropped, so that the next watch authenticates again."""
        message = str(
            refused.get("cancel_reason")
            or refused.get("message")
            or refused.get("error")
            or refused
        )
        code = _STATUS.get(int(refused.get("code", 0)))
        if self._stale(message, token) and self._token == token:
            self._token = ""
        if "permission denied" in message:
            user = self.credentials.user if self.credentials else ""
            asked = f"Watch {_keys_of(create)}"
            log.warning("etcd at %s refused user %r: %s (%s)", self.url, user, message, asked)
            raise Forbidden(f"etcd refused {asked} to user {user!r}: {message}")
        if refused.get("canceled"):
            raise Unavailable(f"etcd cancelled the watch: {message}")
        raise _etcd_error(self.url, code, message)

    # --- authentication's users and roles ----------------------------------

    async def auth(self, method: str, **fields: Any) -> Any:
        """One call of etcd's Auth service (``AuthEnable``, ``UserAdd``, ``RoleGet``, ...;
        ``state.etcd_wire`` names those desired makes) with its request's fields."""
        path = f"/etcdserverpb.Auth/{method}"
        request_type, _ = METHODS[path]
        return await self._call(path, MESSAGE[request_type](**fields))

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
        token = await self._auth_token()
        headers = {"Authorization": token} if token else None
        member = self.urls[self._watch_at % len(self.urls)]
        try:
            async with self._http().post(
                member + "/v3/watch",
                json={"create_request": create},
                timeout=timeout,
                headers=headers,
            ) as resp:
                async for line in _lines(resp.content):
                    msg = json.loads(line)
                    result = msg.get("result", {})
                    if result.get("compact_revision"):
                        raise Gone(
                            f"revision {start_revision} was compacted "
                            f"(oldest kept: {result['compact_revision']})"
                        )
                    if "error" in msg:  # {"error": {...}}, or {"error": "...", "code": N}
                        self._refused_watch(
                            msg["error"] if isinstance(msg["error"], dict) else msg, create, token
                        )
                    if result.get("canceled"):
                        self._refused_watch(result, create, token)
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
            if isinstance(exc, aiohttp.ClientConnectionError | TimeoutError):
                self._watch_at += 1  # the next watch tries the next member
            raise Unavailable(f"watch on etcd at {member} broke: {exc}") from exc
        except RuntimeError as exc:  # aiohttp's "Connection closed.": the client was closed
            raise Unavailable(f"watch on etcd at {member} ended: {exc}") from exc
        raise Unavailable(f"etcd at {member} closed the watch stream")


def _target(urls: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """gRPC's target for etcd's members, and the channel options it needs: one member's
    ``host:port``, or for several with IP addresses ``ipv4:a:p,b:q`` (gRPC then tries
    each; TLS checks each member's certificate for the first one's address, so the
    members' certificates must all carry every member's address, as etcd's guide makes
    them)."""
    hosts = [urlsplit(u) for u in urls]
    addresses = [f"{h.hostname or '127.0.0.1'}:{h.port or 2379}" for h in hosts]
    if len(addresses) == 1:
        return addresses[0], []
    try:
        for h in hosts:
            ipaddress.IPv4Address(h.hostname or "")
    except ValueError:
        return addresses[0], []  # gRPC resolves one name: the first member's
    return "ipv4:" + ",".join(addresses), [
        ("grpc.ssl_target_name_override", hosts[0].hostname or "")
    ]


def _metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("token", token),) if token else None


def _keys_of(request: Any) -> str:
    """The keys a request asked for, for the log: ``key`` or ``[key, range_end)``, or
    those of a transaction's compares and operations."""

    def one(key: bytes, end: bytes) -> str:
        return f"[{key!r}, {end!r})" if end else repr(key)

    if isinstance(request, dict):  # a watch's create request (base64 keys)
        return one(_unb64(request.get("key")), _unb64(request.get("range_end")))
    if request is None:
        return ""
    if hasattr(request, "compare"):
        ops = [getattr(op, op.WhichOneof("request")) for op in request.success]
        keys = [one(c.key, b"") for c in request.compare] + [
            one(o.key, getattr(o, "range_end", b"")) for o in ops
        ]
        return ", ".join(dict.fromkeys(keys))
    if hasattr(request, "key"):
        return one(request.key, getattr(request, "range_end", b""))
    return ""


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
