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

Invariants: every batch and its progress are one SQL transaction, unless SQL
refuses an object of it (a lone surrogate SQLite cannot encode, a NUL
PostgreSQL will not store): then the batch is written again in parts until
each refused object is alone, every other row is written, and the progress
moves past the batch; each refused object is reported (a log line, a
``ProjectionFailed`` event on it, ``desired_reconcile_errors_total`` with
controller "conductor"), never stops the conductor and is never changed to
fit. An error of the database itself (unreachable, locked) is retried with
backoff, the batch kept. After a (re)start the first full list replaces what
SQL believed (objects deleted while the conductor was away are marked
deleted), with the same isolation of refused objects. Unlike the per-key
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
from reconcilers.runtime.metrics import Metrics
from state.envelope import Obj
from state.errors import DesiredError
from state.etcd import EtcdClient
from state.sql.projection import Projection
from state.sql.refusals import Refused
from state.store import Store
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
#: first and longest wait before a write the database itself failed is tried again
_RETRY_FIRST = 0.5
_RETRY_MAX = 30.0


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

    def __init__(self, etcd: EtcdClient, sql_url: str, metrics: Metrics | None = None) -> None:
        self.etcd = etcd
        self.store = Store(etcd)
        self.metrics = metrics or Metrics()
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
        projecting = asyncio.create_task(self._project(queue))
        helpers = {pumping: "the watch", nodes: "the compute nodes", checkpoints: "checkpoints"}
        try:
            # none of them ends on its own: one that does (the watch broken beyond resuming)
            # ends the conductor loudly rather than leave it waiting for events forever
            done, _ = await asyncio.wait(
                {projecting, *helpers}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()
            raise RuntimeError(f"{', '.join(helpers.get(t, 'projecting') for t in done)} ended")
        finally:
            for task in (projecting, *helpers):
                task.cancel()
            await asyncio.gather(projecting, *helpers, return_exceptions=True)
            self.projection.close()

    async def _project(self, queue: asyncio.Queue[ObjectEvent]) -> None:
        await self._initial(queue)
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < _BATCH:
                batch.append(queue.get_nowait())
            await self._apply(batch)

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._writing:
            return await asyncio.to_thread(fn, *args)

    async def _write_retrying(
        self, what: str, fn: Callable[..., list[Refused[Obj]]], *args: Any
    ) -> None:
        """Writes until the database takes it (a failure of the database itself is retried
        with backoff; objects SQL refuses do not fail the write), then reports each object
        it refused."""
        delay = _RETRY_FIRST
        while True:
            try:
                refused = await self._write(fn, *args)
                break
            except Exception as exc:
                self.metrics.errors.labels(self.name, type(exc).__name__).inc()
                log.warning("writing the %s failed, retrying in %.1fs: %s", what, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
        for r in refused:
            await self._report(r)

    async def _report(self, refused: Refused[Obj]) -> None:
        """A refused object: logged, counted, and an event on it."""
        obj = refused.unit
        meta = obj.get("metadata") or {}
        self.metrics.errors.labels(self.name, refused.reason).inc()
        log.error(
            "SQL refused an object; skipped: %s",
            refused.message,
            extra={
                "object": ascii(f"{obj.get('kind')}/{meta.get('project')}/{meta.get('name')}"),
                "uid": ascii(meta.get("uid")),
            },
        )
        try:
            await self.store.record_event(
                obj,
                "Warning",
                "ProjectionFailed",
                f"SQL refused this object, so list views do not show it as it is: {refused.message}",
            )
        except (DesiredError, ValueError, KeyError, TypeError) as exc:  # a name no key can hold
            log.warning("cannot record the refusal as an event: %s", exc)

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
                try:
                    await self._write(self.projection.checkpoint)
                except Exception as exc:  # the database itself: the next one tries again
                    self.metrics.errors.labels(self.name, type(exc).__name__).inc()
                    log.warning("checkpoint failed: %s", exc)
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
                rows = []
                for h in cluster.hosts.values():
                    try:
                        rows.append(_node_row(h, view.records.get(h.name, {})))
                    except (TypeError, ValueError) as exc:  # a host record hostd did not write
                        self._refused_node(h.name, type(exc).__name__, str(exc))
                try:
                    refused = await self._write(self.projection.compute_nodes, rows)
                except Exception as exc:  # the database itself: the next change tries again
                    refused = []
                    self.metrics.errors.labels(self.name, type(exc).__name__).inc()
                    log.warning("writing the compute nodes failed: %s", exc)
                for r in refused:
                    self._refused_node(r.unit["host"], r.reason, r.message)
                await view.changed.wait()
                await asyncio.sleep(_NODES_EVERY)  # changes come in bursts: fold them
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

    def _refused_node(self, host: str, reason: str, message: str) -> None:
        self.metrics.errors.labels(self.name, reason).inc()
        log.error("SQL refused a compute node; skipped: %s", message, extra={"host": ascii(host)})

    async def _initial(self, queue: asyncio.Queue[ObjectEvent]) -> None:
        present: list[dict[str, Any]] = []
        while True:
            ev = await queue.get()
            if ev.type == BOOKMARK:
                await self._write_retrying("full list", self.projection.sync, present, ev.revision)
                self.synced.set()
                return
            if ev.type == ADDED and ev.object is not None:
                present.append(ev.object)

    async def _apply(self, batch: list[ObjectEvent]) -> None:
        latest: dict[str, dict[str, Any]] = {}
        deletes: dict[str, dict[str, Any]] = {}
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
                deletes[uid] = ev.object
            else:
                deletes.pop(uid, None)
                latest[uid] = ev.object
        await self._write_retrying(
            "batch",
            self.projection.apply,
            list(latest.values()),
            list(deletes.values()),
            revision,
            instance_changes,
        )
        self._last_apply = time.monotonic()
