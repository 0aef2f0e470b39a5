"""The scheduler's view of the cluster: host records, liveness, allocations, Host settings.

Owns: a cache of ``/hosts/``, ``/alive/``, ``/alloc/`` and the Host
objects, each kept by a watch (``state.keywatch``), and building the
``Cluster`` placement works on without reading etcd each time. The
scheduler's own allocation writes are folded in at once, so that its next
placement does not wait for the watch to echo them.

Must never: be trusted for correctness: every placement still compares the
allocation's revision in etcd; a stale view only costs a retry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconcilers.placement import HostState, Resources
from state import keys
from state.etcd import EtcdClient
from state.keywatch import BOOKMARK, DELETE, KeyWatch


def resources(d: dict[str, Any]) -> Resources:
    return Resources(int(d.get("vcpus", 0)), int(d.get("ramMiB", 0)), int(d.get("diskGiB", 0)))


@dataclass
class Cluster:
    """Every host's state and allocation, as placement sees them."""

    hosts: dict[str, HostState]
    allocs: dict[str, tuple[dict[str, Any], int]]  # host -> (allocation, mod revision; 0 if none)

    def host_of(self, uid: str) -> str | None:
        for name, (alloc, _) in self.allocs.items():
            if uid in alloc.get("instances", {}):
                return name
        return None


def host_state(
    name: str,
    rec: dict[str, Any],
    alive: bool,
    alloc: dict[str, Any],
    spec: dict[str, Any],
) -> HostState:
    ratios = spec.get("allocationRatios", {})
    return HostState(
        name=name,
        capacity=resources(rec.get("capacity", {})),
        used=resources(alloc.get("used", {})),
        zone=spec.get("zone") or rec.get("zone", "nova"),
        alive=alive,
        enabled=spec.get("enabled", True),
        forced_down=spec.get("forcedDown", False),
        cpu_ratio=float(ratios.get("cpu", 16.0)),
        ram_ratio=float(ratios.get("ram", 1.5)),
        disk_ratio=float(ratios.get("disk", 1.0)),
        reserved=resources(spec.get("reserved", {})),
        traits=frozenset(rec.get("traits", [])) | frozenset(spec.get("traits", [])),
        instances=frozenset(alloc.get("instances", {})),
        metadata=tuple(sorted((spec.get("metadata") or {}).items())),
        virt_type=str(rec.get("virtType", "")),
        arch=str(rec.get("arch", "x86_64")),
    )


def build(
    records: dict[str, dict[str, Any]],
    alive: set[str],
    allocs: dict[str, tuple[dict[str, Any], int]],
    settings: dict[str, dict[str, Any]],
) -> Cluster:
    hosts = {
        name: host_state(
            name, rec, name in alive, allocs.get(name, ({}, 0))[0], settings.get(name, {})
        )
        for name, rec in records.items()
    }
    return Cluster(hosts, dict(allocs))


class ClusterView:
    def __init__(self, etcd: EtcdClient) -> None:
        self.etcd = etcd
        self.records: dict[str, dict[str, Any]] = {}
        self.alive: set[str] = set()
        self.allocs: dict[str, tuple[dict[str, Any], int]] = {}
        self.settings: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        #: set at every change seen; whoever waits on it clears it
        self.changed = asyncio.Event()
        self._liveness_handlers: list[Callable[[str, bool], None]] = []
        #: the last snapshot, kept while nothing but allocations changes
        self._cluster: Cluster | None = None
        self._synced_parts = 0

    def add_liveness_handler(self, handler: Callable[[str, bool], None]) -> None:
        """``handler(host, alive)`` runs when a host's liveness key comes or goes."""
        self._liveness_handlers.append(handler)

    def snapshot(self) -> Cluster:
        """The cluster as placement sees it; built again only after a change from outside."""
        if self._cluster is None:
            self._cluster = build(self.records, self.alive, self.allocs, self.settings)
        return self._cluster

    def _set_alloc(self, host: str, alloc: dict[str, Any], revision: int) -> None:
        self.allocs[host] = (alloc, revision)
        cluster, rec = self._cluster, self.records.get(host)
        if cluster is not None and rec is not None:
            cluster.allocs[host] = (alloc, revision)
            cluster.hosts[host] = host_state(
                host, rec, host in self.alive, alloc, self.settings.get(host, {})
            )

    def reserve(self, host: str, alloc: dict[str, Any]) -> None:
        """Shows an allocation this process is about to write (placements in flight see
        each other); its revision stays the committed one until ``claimed``."""
        self._set_alloc(host, alloc, self.allocs.get(host, ({}, 0))[1])

    def claimed(self, host: str, alloc: dict[str, Any], revision: int) -> None:
        """Folds in an allocation this process just wrote at ``revision``."""
        if revision > self.allocs.get(host, ({}, 0))[1]:
            self._set_alloc(host, alloc, revision)

    async def refresh(self, host: str) -> None:
        """Reads the host's allocation again (after a write of ours failed)."""
        kv = await self.etcd.get(keys.alloc(host))
        if kv is None:
            self.allocs.pop(host, None)
            self._cluster = None
        elif kv.mod_revision >= self.allocs.get(host, ({}, 0))[1]:
            self._set_alloc(host, json.loads(kv.value), kv.mod_revision)

    async def _follow(self, prefix: bytes, part: str) -> None:
        async for ev in KeyWatch(self.etcd, prefix):
            if ev.type == BOOKMARK:
                self._synced_parts += 1
                if self._synced_parts == 4:
                    self.synced.set()
                continue
            self.changed.set()
            name = keys.last_segment(ev.key)
            gone = ev.type == DELETE
            if part == "alloc" and not gone:
                # our own writes come back with the revision ``claimed`` recorded: no news
                if ev.revision > self.allocs.get(name, ({}, 0))[1]:
                    self._set_alloc(name, json.loads(ev.value), ev.revision)
                continue
            self._cluster = None
            if part == "hosts":
                if gone:
                    self.records.pop(name, None)
                else:
                    self.records[name] = json.loads(ev.value)
            elif part == "alive":
                (self.alive.discard if gone else self.alive.add)(name)
                for handler in self._liveness_handlers:
                    handler(name, not gone)
            elif part == "alloc":
                self.allocs.pop(name, None)
            elif gone:
                self.settings.pop(name, None)
            else:
                self.settings[name] = json.loads(ev.value).get("spec", {})

    async def run(self) -> None:
        await asyncio.gather(
            self._follow(keys.hosts_prefix(), "hosts"),
            self._follow(keys.alive_prefix(), "alive"),
            self._follow(keys.alloc_prefix(), "alloc"),
            self._follow(keys.spec_prefix("Host"), "settings"),
        )
