"""The floating IP reconciler: an address from its pool for each FloatingIP.

Owns: for each FloatingIP, its pool (the project's external Network of that
name, else any external Network of that name), the address held through
``state.ipam`` under the floating IP's uid (the one ``spec.address`` asks
for, else a free one), ``status.address``, ``status.poolUid`` and the
``Allocated`` condition (False, retried, when the pool is missing, is not
external, is full or the address is taken); on deletion, the address freed
and then its finalizer (``desired/floating-ip``, given at creation) dropped.
The network reconciler's sweep frees what a floating IP gone without it held.

Must never: hand out an address of a network that is not external; move a
floating IP to another address while it holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconcilers.runtime.controller import Requeue
from state import ipam
from state.envelope import FLOATING_IP_FINALIZER, Obj, Ref, set_condition
from state.errors import BadRequest, Conflict
from state.store import Store

FINALIZER = FLOATING_IP_FINALIZER


async def find_pool(store: Store, project: str, name: str) -> Obj | None:
    """The external network a floating IP of ``project`` names as its pool."""
    own = await store.get_or_none(Ref("Network", project, name))
    if own is not None and own["spec"].get("external"):
        return own
    for net in (await store.list("Network")).items:
        if net["metadata"]["name"] == name and net["spec"].get("external"):
            return net
    return own


@dataclass
class FloatingIPReconciler:
    store: Store
    #: seconds before a floating IP that could not get an address tries again
    retry: float = 10.0
    name: str = "floating-ips"

    async def reconcile(self, key: Ref) -> Requeue | None:
        fip = await self.store.get_or_none(key)
        if fip is None:
            return None  # gone without the finalizer (made before it): the sweep frees it
        meta, spec = fip["metadata"], fip["spec"]
        if meta.get("deletionTimestamp"):
            pool = await find_pool(self.store, meta["project"], spec["pool"])
            pool_uid = (fip.get("status") or {}).get("poolUid") or (
                pool["metadata"]["uid"] if pool else None
            )
            if pool_uid:  # (the API allocates before the status says where)
                await ipam.release(self.store.etcd, pool_uid, meta["uid"])
            await self.store.remove_finalizer(key, FINALIZER)
            return None
        address, pool_uid = "", ""
        problem: tuple[str, str] | None = None
        pool = await find_pool(self.store, meta["project"], spec["pool"])
        if pool is None:
            problem = ("PoolNotFound", f"pool {spec['pool']!r} not found")
        elif not pool["spec"].get("external"):
            problem = ("NotAPool", f"network {spec['pool']!r} is not external")
        else:
            try:
                port = await ipam.allocate(
                    self.store.etcd, pool, meta["uid"], 0, spec.get("address")
                )
                address, pool_uid = port.address, pool["metadata"]["uid"]
            except (BadRequest, Conflict) as exc:
                problem = (type(exc).__name__, exc.message)

        def mutate(status: dict[str, Any]) -> bool:
            before = (status.get("address"), status.get("poolUid"))
            if address:
                status.update(address=address, poolUid=pool_uid)
            reason, message = problem or ("Allocated", f"{address} from {spec['pool']}")
            changed = set_condition(status, "Allocated", problem is None, reason, message)
            return changed or before != (status.get("address"), status.get("poolUid"))

        await self.store.patch_status(key, mutate, uid=meta["uid"])
        return Requeue(after=self.retry) if problem else None
