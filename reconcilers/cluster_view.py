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


def build(
    records: dict[str, dict[str, Any]],
    alive: set[str],
    allocs: dict[str, tuple[dict[str, Any], int]],
    settings: dict[str, dict[str, Any]],
) -> Cluster:
    hosts: dict[str, HostState] = {}
    for name, rec in records.items():
        spec = settings.get(name, {})
        alloc = allocs.get(name, ({}, 0))[0]
        ratios = spec.get("allocationRatios", {})
        hosts[name] = HostState(
            name=name,
            capacity=resources(rec.get("capacity", {})),
            used=resources(alloc.get("used", {})),
            zone=spec.get("zone") or rec.get("zone", "nova"),
            alive=name in alive,
            enabled=spec.get("enabled", True),
            forced_down=spec.get("forcedDown", False),
            cpu_ratio=float(ratios.get("cpu", 16.0)),
            ram_ratio=float(ratios.get("ram", 1.5)),
            disk_ratio=float(ratios.get("disk", 1.0)),
            reserved=resources(spec.get("reserved", {})),
            traits=frozenset(rec.get("traits", [])) | frozenset(spec.get("traits", [])),
            instances=frozenset(alloc.get("instances", {})),
        )
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
        self._synced_parts = 0

    def add_liveness_handler(self, handler: Callable[[str, bool], None]) -> None:
        """``handler(host, alive)`` runs when a host's liveness key comes or goes."""
        self._liveness_handlers.append(handler)

    def snapshot(self) -> Cluster:
        return build(self.records, self.alive, self.allocs, self.settings)

    def claimed(self, host: str, alloc: dict[str, Any], revision: int) -> None:
        """Folds in an allocation this process just wrote at ``revision``."""
        if revision > self.allocs.get(host, ({}, 0))[1]:
            self.allocs[host] = (alloc, revision)

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
                if gone:
                    self.allocs.pop(name, None)
                elif ev.revision >= self.allocs.get(name, ({}, 0))[1]:
                    self.allocs[name] = (json.loads(ev.value), ev.revision)
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
