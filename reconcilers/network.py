"""The network reconciler: addresses for instances' ports (IPAM).

Owns: for each Instance, one port per entry of ``spec.networks`` (a network
of its project, or a shared one; the project's network named ``default``
when ``spec.networks`` is absent and there is one), each port's address held
through ``state.ipam`` (a fixed one when asked), ``status.ports``
(``network``, ``networkUid``, ``address``, ``mac``) and the ``NetworkReady``
condition (False, with the reason, when a network is missing or full or the
address asked for is taken, retried; an instance without ports and none before
gets no write); releasing an instance's addresses once
it is being deleted, and those of ports it no longer has; and, every resync,
sweeping addresses whose instance (or floating IP) is gone.

Must never: give a port an address of another project's network that is not
shared; hold an address for an instance that is gone for longer than a resync.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from reconcilers.port_render import DEFAULT_NETWORK
from reconcilers.runtime.controller import Controller, Requeue
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.metrics import Metrics
from state import ipam
from state.envelope import Obj, Ref, ref, set_condition
from state.errors import BadRequest, Conflict
from state.store import Store
from state.watch import DELETED

log = logging.getLogger(__name__)


@dataclass
class NetworkReconciler:
    store: Store
    #: the instances' and networks' informers: an instance that asks for no port and holds
    #: none costs no read of etcd; networks are looked up here
    instances: Informer
    networks: Informer
    #: seconds before a port that could not get an address tries again
    retry: float = 10.0
    name: str = "network"

    def _network(self, project: str, name: str) -> Obj | None:
        own = self.networks.get(Ref("Network", project, name))
        if own is not None:
            return own
        return next(
            (
                net
                for net in self.networks.list()
                if net["metadata"]["name"] == name and net["spec"].get("shared")
            ),
            None,
        )

    def _wanted(self, inst: Obj) -> list[dict[str, Any]]:
        """The ports the instance asks for (the default network's when it names none)."""
        if "networks" in inst["spec"]:
            return list(inst["spec"]["networks"])
        default = self.networks.get(Ref("Network", inst["metadata"]["project"], DEFAULT_NETWORK))
        return [{"network": DEFAULT_NETWORK}] if default is not None else []

    async def reconcile(self, key: Ref) -> Requeue | None:
        seen = self.instances.get(key)
        if (
            seen is not None
            and not seen["metadata"].get("deletionTimestamp")
            and not (seen.get("status") or {}).get("ports")
            and not self._wanted(seen)
        ):
            return None  # no ports, none before: nothing to read or write
        inst = await self.store.get_or_none(key)
        if inst is None:
            return None  # gone: the sweep frees what it held
        meta = inst["metadata"]
        uid, had = meta["uid"], inst.get("status", {}).get("ports") or []
        if meta.get("deletionTimestamp"):
            for net_uid in {p["networkUid"] for p in had}:
                await ipam.release(self.store.etcd, net_uid, uid)
            return None
        wanted = self._wanted(inst)
        if not wanted and not had:
            return None  # no ports, none before: nothing to write
        ports: list[dict[str, Any]] = []
        problem: tuple[str, str] | None = None
        for index, entry in enumerate(wanted):
            net = self._network(meta["project"], entry["network"])
            if net is None:
                problem = ("NetworkNotFound", f"network {entry['network']!r} not found")
                break
            try:
                port = await ipam.allocate(
                    self.store.etcd, net, uid, index, entry.get("fixedAddress")
                )
            except (BadRequest, Conflict) as exc:
                problem = (type(exc).__name__, exc.message)
                break
            ports.append(
                {
                    "network": port.network,
                    "networkUid": net["metadata"]["uid"],
                    "address": port.address,
                    "mac": port.mac,
                }
            )
        kept = {(p["networkUid"], p["address"]) for p in ports}
        for net_uid in {p["networkUid"] for p in had}:
            keep = frozenset(a for n, a in kept if n == net_uid)
            await ipam.release(self.store.etcd, net_uid, uid, keep)

        def mutate(status: dict[str, Any]) -> bool:
            moved = status.get("ports") != (ports or None)
            if ports:
                status["ports"] = ports
            else:
                status.pop("ports", None)
            reason, message = problem or ("Allocated", f"{len(ports)} port(s)")
            return set_condition(status, "NetworkReady", problem is None, reason, message) or moved

        await self.store.patch_status(key, mutate, uid=uid)
        return Requeue(after=self.retry) if problem else None


def controller(
    store: Store,
    instances: Informer,
    networks: Informer,
    *,
    retry: float = 10.0,
    workers: int = 4,
    resync: float = 300.0,
    metrics: Metrics | None = None,
) -> Controller[Ref]:
    """The network reconciler's controller: instances' changes, and a network's coming or
    changing, bring the instances of its project (all, for a shared one) that have no ports
    yet."""
    ctl: Controller[Ref] = Controller(
        NetworkReconciler(store, instances, networks, retry=retry),
        [instances],
        workers=workers,
        resync=resync,
        metrics=metrics,
        events=store,
    )

    def on_network(event_type: str, net: Obj) -> None:
        if event_type == DELETED:
            return
        project, shared = net["metadata"]["project"], net["spec"].get("shared")
        for inst in instances.list():
            if (shared or inst["metadata"]["project"] == project) and not (
                inst.get("status") or {}
            ).get("ports"):
                ctl.queue.add(ref(inst))

    networks.add_handler(on_network)
    return ctl


async def sweep(store: Store, interval: float) -> None:
    """Every ``interval`` seconds, frees the addresses held for instances and floating IPs
    that are gone, and those of networks that are gone."""
    while True:
        await asyncio.sleep(interval)
        held_on = await ipam.networks(store.etcd)  # before the networks: a new one is in both
        live = {
            o["metadata"]["uid"]
            for kind in ("Instance", "FloatingIP")
            for o in (await store.list(kind)).items
        }
        networks = {n["metadata"]["uid"] for n in (await store.list("Network")).items}
        for net_uid in networks:
            for holder in {
                h["instance"] for h in (await ipam.held(store.etcd, net_uid)).values()
            } - live:
                freed = await ipam.release(store.etcd, net_uid, holder)
                log.info("freed %d address(es) of gone instance %s", freed, holder)
        for net_uid in held_on - networks:
            freed = await ipam.drop_network(store.etcd, net_uid)
            log.info("freed %d address(es) of gone network %s", freed, net_uid)
