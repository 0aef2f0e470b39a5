"""Watches of a plain key prefix (assignments, host records) that never lose or repeat a change.

Owns: the same guarantees as ``state.watch`` for keys that are not objects:
the initial state as PUT events then a BOOKMARK, resume from the last
revision after a broken stream, and after a compaction a re-list that emits
exactly the differences.

Must never: interpret values; callers decode them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from state.errors import Gone, Transient
from state.etcd import EtcdClient, KeyValue, prefix_end

PUT = "PUT"
DELETE = "DELETE"
BOOKMARK = "BOOKMARK"


@dataclass(frozen=True, slots=True)
class KeyEvent:
    type: str
    key: bytes
    #: the value after a PUT, the last value seen before a DELETE; empty for BOOKMARK
    value: bytes
    #: a PUT's: the key's mod revision (what a compare needs); otherwise the watch's revision
    revision: int


class KeyWatch:
    def __init__(
        self,
        etcd: EtcdClient,
        prefix: bytes,
        *,
        retry_delay: float = 0.2,
        max_retry_delay: float = 5.0,
    ) -> None:
        self.etcd = etcd
        self.prefix = prefix
        self.revision = 0
        self._kvs: dict[bytes, KeyValue] = {}
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay

    async def _snapshot(self) -> dict[bytes, KeyValue]:
        res = await self.etcd.range(self.prefix, prefix_end(self.prefix))
        self.revision = res.revision
        return {kv.key: kv for kv in res.kvs}

    async def __aiter__(self) -> AsyncGenerator[KeyEvent, None]:
        self._kvs = await self._snapshot()
        for kv in self._kvs.values():
            yield KeyEvent(PUT, kv.key, kv.value, kv.mod_revision)
        yield KeyEvent(BOOKMARK, b"", b"", self.revision)
        delay = self._retry_delay
        while True:
            try:
                async for batch in self.etcd.watch(
                    self.prefix, prefix_end(self.prefix), self.revision + 1
                ):
                    delay = self._retry_delay
                    for ev in batch.events:
                        kv = ev.kv
                        known = self._kvs.get(kv.key)
                        if ev.deleted:
                            if known is not None:
                                del self._kvs[kv.key]
                                yield KeyEvent(DELETE, kv.key, known.value, kv.mod_revision)
                        elif known is None or kv.mod_revision > known.mod_revision:
                            self._kvs[kv.key] = kv
                            yield KeyEvent(PUT, kv.key, kv.value, kv.mod_revision)
                    self.revision = max(self.revision, batch.revision)
            except Gone:
                before, self._kvs = self._kvs, await self._snapshot()
                for key, old in before.items():
                    if key not in self._kvs:
                        yield KeyEvent(DELETE, key, old.value, self.revision)
                for key, kv in self._kvs.items():
                    if key not in before or before[key].mod_revision != kv.mod_revision:
                        yield KeyEvent(PUT, key, kv.value, kv.mod_revision)
            except Transient:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
