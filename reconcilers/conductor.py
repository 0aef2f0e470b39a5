"""The conductor: projects every object, spec and status, from etcd into SQL.

Inputs: one watch over every object of every kind (``state.watch``), which
resumes and re-lists by itself.

Outputs: rows of ``resources`` (upserted by uid, never moved back to an
older resourceVersion; marked deleted when the object goes), the Compute
views of Instances (``instances``, ``instance_actions`` and their events),
``compute_nodes`` from the host records, liveness and allocations (a second
input: the cluster view's watches), and the ``watch_progress`` revision of
``conductor``: SQL reflects etcd up to it, so a reader that wrote at
revision R waits until progress >= R.

Invariants: every batch and its progress are one SQL transaction; after a
(re)start the first full list replaces what SQL believed (objects deleted
while the conductor was away are marked deleted). Unlike the per-key
reconcilers this is a stream projector: SQL work is batched, which per-key
reconciles could not do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from reconcilers.cluster_view import ClusterView
from reconcilers.placement import HostState
from state.etcd import EtcdClient
from state.sql.projection import Projection
from state.watch import ADDED, BOOKMARK, DELETED, ObjectEvent, ObjectWatch

log = logging.getLogger(__name__)

#: most events folded into one SQL transaction
_BATCH = 500
#: least seconds between two writes of the compute nodes
_NODES_EVERY = 1.0
#: SQLite's write-ahead log is checkpointed after this many quiet seconds (no batch
#: applied), at most every _CHECKPOINT_EVERY and at least every _CHECKPOINT_AT_LEAST seconds
_QUIET = 2.0
_CHECKPOINT_EVERY = 5.0
_CHECKPOINT_AT_LEAST = 60.0


def _node_row(h: HostState, record: dict[str, Any]) -> dict[str, Any]:
    """A ``compute_nodes`` row: the host's record (as its hostd wrote it) and usage."""
    return {
        "host": h.name,
        "zone": h.zone,
        "virt_type": h.virt_type,
        "hypervisor_type": str(record.get("hypervisorType", "")),
        "hypervisor_version": int(record.get("hypervisorVersion", 0)),
        "cpu_info": json.dumps(record.get("cpuInfo", {}), sort_keys=True),
        "host_ip": str(record.get("hostIp", "")),
        "vcpus": h.capacity.vcpus,
        "ram_mib": h.capacity.ram_mib,
        "disk_gib": h.capacity.disk_gib,
        "vcpus_used": h.used.vcpus,
        "ram_mib_used": h.used.ram_mib,
        "disk_gib_used": h.used.disk_gib,
        "running_vms": len(h.instances),
        "alive": h.alive,
    }


class Conductor:
    name = "conductor"

    def __init__(self, etcd: EtcdClient, sql_url: str) -> None:
        self.etcd = etcd
        self.projection = Projection(sql_url, self.name)
        self.synced = asyncio.Event()
        self._last_apply = 0.0
        #: one SQL writer at a time: SQLite lets a second one wait in sleeps of up to 100 ms
        self._writing = asyncio.Lock()

    async def run(self) -> None:
        queue: asyncio.Queue[ObjectEvent] = asyncio.Queue()

        async def pump() -> None:
            async for ev in ObjectWatch(self.etcd):
                await queue.put(ev)

        pumping = asyncio.create_task(pump())
        nodes = asyncio.create_task(self._compute_nodes())
        checkpoints = asyncio.create_task(self._checkpoints())
        try:
            await self._initial(queue)
            while True:
                batch = [await queue.get()]
                while not queue.empty() and len(batch) < _BATCH:
                    batch.append(queue.get_nowait())
                await self._apply(batch)
        finally:
            pumping.cancel()
            nodes.cancel()
            checkpoints.cancel()
            await asyncio.gather(pumping, nodes, checkpoints, return_exceptions=True)
            self.projection.close()

    async def _write(self, fn: Callable[..., None], *args: Any) -> None:
        async with self._writing:
            await asyncio.to_thread(fn, *args)

    async def _checkpoints(self) -> None:
        """Folds SQLite's write-ahead log into the database beside the projection's commits
        rather than inside them: when nothing was applied for a while, or at the latest
        every _CHECKPOINT_AT_LEAST seconds."""
        done = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            quiet = now - self._last_apply > _QUIET
            if (quiet and now - done > _CHECKPOINT_EVERY) or now - done > _CHECKPOINT_AT_LEAST:
                await self._write(self.projection.checkpoint)
                done = time.monotonic()

    async def _compute_nodes(self) -> None:
        """Keeps ``compute_nodes`` equal to the hosts' records, liveness and allocations."""
        view = ClusterView(self.etcd)
        following = asyncio.create_task(view.run())
        try:
            await view.synced.wait()
            while True:
                view.changed.clear()
                cluster = view.snapshot()
                rows = [_node_row(h, view.records.get(h.name, {})) for h in cluster.hosts.values()]
                await self._write(self.projection.compute_nodes, rows)
                await view.changed.wait()
                await asyncio.sleep(_NODES_EVERY)  # changes come in bursts: fold them
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

    async def _initial(self, queue: asyncio.Queue[ObjectEvent]) -> None:
        present: list[dict[str, Any]] = []
        while True:
            ev = await queue.get()
            if ev.type == BOOKMARK:
                await self._write(self.projection.sync, present, ev.revision)
                self.synced.set()
                return
            if ev.type == ADDED and ev.object is not None:
                present.append(ev.object)

    async def _apply(self, batch: list[ObjectEvent]) -> None:
        latest: dict[str, dict[str, Any]] = {}
        deletes: list[str] = []
        instance_changes: list[dict[str, Any]] = []
        revision = 0
        for ev in batch:
            revision = max(revision, ev.revision)
            if ev.object is None:
                continue
            if ev.object["kind"] == "Instance" and ev.type != DELETED:
                instance_changes.append(ev.object)
            uid = ev.object["metadata"]["uid"]
            if ev.type == DELETED:
                latest.pop(uid, None)
                deletes.append(uid)
            else:
                latest[uid] = ev.object
        await self._write(
            self.projection.apply, list(latest.values()), deletes, revision, instance_changes
        )
        self._last_apply = time.monotonic()
