"""The scheduler's view of the cluster: host records, liveness, allocations, Host settings.

Owns: a cache of ``/hosts/``, ``/alive/``, ``/alloc/``, the Host objects and
the Aggregate objects, each kept by a watch (``state.keywatch``), and
building the ``Cluster`` placement works on without reading etcd each time.
A host's settings are its Host spec with its aggregates folded in: their
metadata (the Host's own wins) and availability zone. The
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


def with_aggregates(
    settings: dict[str, dict[str, Any]], aggregates: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Every host's Host spec with the metadata and availability zone of the aggregates
    it is in (listed in an Aggregate's hosts, or naming the aggregate itself)."""
    merged = {name: dict(spec) for name, spec in settings.items()}
    members: dict[str, list[str]] = {}
    for agg, spec in sorted(aggregates.items()):
        for host in spec.get("hosts") or []:
            members.setdefault(host, []).append(agg)
    for host, spec in settings.items():
        for agg in spec.get("aggregates") or []:
            if agg in aggregates and agg not in members.get(host, []):
                members.setdefault(host, []).append(agg)
    for host, aggs in members.items():
        spec = merged.setdefault(host, {})
        metadata: dict[str, Any] = {}
        for agg in aggs:
            metadata.update(aggregates[agg].get("metadata") or {})
            if aggregates[agg].get("availabilityZone"):
                spec["zone"] = aggregates[agg]["availabilityZone"]
        spec["metadata"] = {**metadata, **(spec.get("metadata") or {})}
    return merged


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
        self.aggregates: dict[str, dict[str, Any]] = {}
        #: settings with aggregates folded in; None after either changed
        self._merged: dict[str, dict[str, Any]] | None = None
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
            self._cluster = build(self.records, self.alive, self.allocs, self._settings())
        return self._cluster

    def _settings(self) -> dict[str, dict[str, Any]]:
        if self._merged is None:
            self._merged = with_aggregates(self.settings, self.aggregates)
        return self._merged

    def _set_alloc(self, host: str, alloc: dict[str, Any], revision: int) -> None:
        self.allocs[host] = (alloc, revision)
        cluster, rec = self._cluster, self.records.get(host)
        if cluster is not None and rec is not None:
            cluster.allocs[host] = (alloc, revision)
            cluster.hosts[host] = host_state(
                host, rec, host in self.alive, alloc, self._settings().get(host, {})
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
                if self._synced_parts == 5:
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
            else:
                self._merged = None
                objects = self.settings if part == "settings" else self.aggregates
                if gone:
                    objects.pop(name, None)
                else:
                    objects[name] = json.loads(ev.value).get("spec", {})

    async def run(self) -> None:
        await asyncio.gather(
            self._follow(keys.hosts_prefix(), "hosts"),
            self._follow(keys.alive_prefix(), "alive"),
            self._follow(keys.alloc_prefix(), "alloc"),
            self._follow(keys.spec_prefix("Host"), "settings"),
            self._follow(keys.spec_prefix("Aggregate"), "aggregates"),
        )
