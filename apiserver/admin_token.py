"""The bootstrap admin token as every API server sees it: its hash in etcd, rotated by one write.

Owns: the record under ``/desired/v1/identity/admin-token``
(``{"sha256": <hex of the token's SHA-256>, "issued": <epoch seconds>}``),
written by the first API server that finds none (for the token it was
configured with) and by ``desired rotate-admin-token`` (``rotate``); the
watch that keeps every API server's copy of it, so that a rotation is seen by
all of them at once; and the check of a presented token against it and
against its lifetime (``api.admin_token_ttl``). While the record is missing
(never written yet, or deleted), an API server takes the token it was
configured with.

Must never: keep the token itself in etcd (only its hash); accept a token
whose hash is not the current record's, or one past its lifetime.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from state import keys
from state.errors import DesiredError, Unauthorized
from state.etcd import EtcdClient, Put, absent
from state.keywatch import BOOKMARK, DELETE, KeyWatch


def digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


@dataclass(frozen=True)
class Record:
    sha256: str
    issued: float

    def to_json(self) -> bytes:
        return json.dumps({"sha256": self.sha256, "issued": self.issued}).encode()

    @staticmethod
    def from_json(raw: bytes) -> Record | None:
        """The record ``raw`` holds, or None when it is none (then no token matches it)."""
        try:
            data = json.loads(raw)
            return Record(str(data["sha256"]), float(data["issued"]))
        except (ValueError, TypeError, KeyError):
            return None


async def rotate(etcd: EtcdClient, token: str) -> Record:
    """Makes ``token`` the only bootstrap admin token of every API server on ``etcd``."""
    record = Record(digest(token), time.time())
    await etcd.put(keys.admin_token(), record.to_json())
    return record


class AdminToken:
    """The current record, kept by a watch; ``accepts`` checks a presented token."""

    def __init__(self, etcd: EtcdClient, configured: str, ttl: int = 0) -> None:
        """``configured``: the token this API server was given (taken while etcd has no
        record); ``ttl``: seconds a token lives after it was made, 0 for ever."""
        self.etcd = etcd
        self.ttl = ttl
        self.configured = Record(digest(configured), time.time())
        #: etcd's record (None while there is none); meaningful once ``synced`` is set
        self.record: Record | None = None
        self.synced = asyncio.Event()

    async def follow(self) -> None:
        """Writes this server's record when etcd has none, then keeps ``record`` equal to
        etcd's until cancelled, retrying while etcd is away."""
        key = keys.admin_token()
        while True:
            try:
                await self.etcd.txn([absent(key)], [Put(key, self.configured.to_json())])
                async for ev in KeyWatch(self.etcd, key):
                    if ev.type == BOOKMARK:
                        self.synced.set()
                    elif ev.key == key:
                        self.record = None if ev.type == DELETE else Record.from_json(ev.value)
            except DesiredError:
                self.synced.clear()
                await asyncio.sleep(1.0)

    async def _current(self) -> Record | None:
        if self.synced.is_set():
            return self.record or self.configured
        kv = await self.etcd.get(keys.admin_token())
        return Record.from_json(kv.value) if kv is not None else self.configured

    async def accepts(self, token: str) -> bool:
        """Whether ``token`` is the bootstrap admin token; raises Unauthorized, saying to
        rotate it, when it is but has outlived ``ttl``."""
        current = await self._current()
        if current is None or not hmac.compare_digest(digest(token), current.sha256):
            return False
        if self.ttl and time.time() >= current.issued + self.ttl:
            when = dt.datetime.fromtimestamp(current.issued + self.ttl, dt.UTC)
            raise Unauthorized(
                f"the bootstrap admin token expired at {when:%Y-%m-%dT%H:%M:%SZ} "
                f"(api.admin_token_ttl is {self.ttl} s): run `desired rotate-admin-token` "
                "for a new one"
            )
        return True
