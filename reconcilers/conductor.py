"""The conductor: projects every object, spec and status, from etcd into SQL.

Inputs: one watch over every object of every kind (``state.watch``), which
resumes and re-lists by itself.

Outputs: rows of ``resources`` (upserted by uid, never moved back to an
older resourceVersion; marked deleted when the object goes) and the
``watch_progress`` revision of ``conductor``: SQL reflects etcd up to it, so
a reader that wrote at revision R waits until progress >= R.

Invariants: every batch and its progress are one SQL transaction; after a
(re)start the first full list replaces what SQL believed (objects deleted
while the conductor was away are marked deleted). Unlike the per-key
reconcilers this is a stream projector: SQL work is batched, which per-key
reconciles could not do.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from state.etcd import EtcdClient
from state.sql.projection import Projection
from state.watch import ADDED, BOOKMARK, DELETED, ObjectEvent, ObjectWatch

log = logging.getLogger(__name__)

#: most events folded into one SQL transaction
_BATCH = 500


class Conductor:
    name = "conductor"

    def __init__(self, etcd: EtcdClient, sql_url: str) -> None:
        self.etcd = etcd
        self.projection = Projection(sql_url, self.name)
        self.synced = asyncio.Event()

    async def run(self) -> None:
        queue: asyncio.Queue[ObjectEvent] = asyncio.Queue()

        async def pump() -> None:
            async for ev in ObjectWatch(self.etcd):
                await queue.put(ev)

        pumping = asyncio.create_task(pump())
        try:
            await self._initial(queue)
            while True:
                batch = [await queue.get()]
                while not queue.empty() and len(batch) < _BATCH:
                    batch.append(queue.get_nowait())
                await self._apply(batch)
        finally:
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)
            self.projection.close()

    async def _initial(self, queue: asyncio.Queue[ObjectEvent]) -> None:
        present: list[dict[str, Any]] = []
        while True:
            ev = await queue.get()
            if ev.type == BOOKMARK:
                await asyncio.to_thread(self.projection.sync, present, ev.revision)
                self.synced.set()
                return
            if ev.type == ADDED and ev.object is not None:
                present.append(ev.object)

    async def _apply(self, batch: list[ObjectEvent]) -> None:
        latest: dict[str, dict[str, Any]] = {}
        deletes: list[str] = []
        revision = 0
        for ev in batch:
            revision = max(revision, ev.revision)
            if ev.object is None:
                continue
            uid = ev.object["metadata"]["uid"]
            if ev.type == DELETED:
                latest.pop(uid, None)
                deletes.append(uid)
            else:
                latest[uid] = ev.object
        await asyncio.to_thread(self.projection.apply, list(latest.values()), deletes, revision)
