"""hostd's view of its assignments: ``/desired/v1/assign/<host>/<uid>``, cached.

Owns: a watch of this host's assignment keys only (hostd reads nothing
else), decoded into dicts keyed by instance uid, with the ``Source``
interface controllers consume (``synced``, ``add_handler``, ``list``).

Must never: read another host's keys.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from state import keys
from state.etcd import EtcdClient
from state.keywatch import BOOKMARK, DELETE, KeyWatch

Handler = Callable[[str, Any], None]


class Assignments:
    def __init__(self, etcd: EtcdClient, host: str) -> None:
        self.prefix = keys.assign_prefix(host)
        self.etcd = etcd
        self.synced = asyncio.Event()
        self._by_uid: dict[str, dict[str, Any]] = {}
        self._handlers: list[Handler] = []

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def get(self, uid: str) -> dict[str, Any] | None:
        return self._by_uid.get(uid)

    def list(self) -> list[dict[str, Any]]:
        return list(self._by_uid.values())

    async def run(self) -> None:
        async for ev in KeyWatch(self.etcd, self.prefix):
            if ev.type == BOOKMARK:
                self.synced.set()
                continue
            uid = keys.last_segment(ev.key)
            value: dict[str, Any] = json.loads(ev.value) if ev.value else {"uid": uid}
            if ev.type == DELETE:
                self._by_uid.pop(uid, None)
            else:
                self._by_uid[uid] = value
            for handler in self._handlers:
                handler(ev.type, value)
