"""The scheduler reconciler: places instances on hosts.

Inputs: Instance objects; Flavor and Image objects (to size and render
them); host records (``/hosts/<host>``), liveness (``/alive/<host>``),
allocations (``/alloc/<host>``) and Host objects (admins' placement
settings), read together in one etcd transaction per reconcile.

Outputs: for a new instance, in one transaction that compares the chosen
host's allocation revision, the allocation with the instance added and the
assignment ``/assign/<host>/<uid>`` (the rendered spec hostd converges);
then the instance's status (``host``, ``Scheduled`` condition). An instance
that fits nowhere is retried every RETRY_UNSCHEDULABLE seconds (reason
``Unschedulable``, an event at each retry) until ``no_valid_host_after``
seconds after its creation, then is in ERROR with Nova's fault "No valid host
was found. ..." (reason ``NoValidHost``, an event); a spec that cannot be
rendered is in ERROR at once (``InvalidSpec``, an event). For a
placed instance, the assignment re-rendered when the spec changes. For a
deleting instance, the assignment removed, and once hostd reports the domain
removed (or the host is dead), the allocation released and the finalizer
dropped.

Invariants: no host is ever over-committed (the allocation compare makes a
racing placement fail and retry); an instance is allocated on at most one
host (placement first looks for the uid in every allocation); every step is
safe to repeat after a crash.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconcilers.catalog import Catalog
from reconcilers.cluster_view import Cluster, ClusterView, resources
from reconcilers.placement import (
    WEIGHERS,
    HostState,
    Request,
    Resources,
    choose,
    required_traits,
)
from reconcilers.port_render import NetworkCatalog
from reconcilers.runtime.controller import Controller, Requeue
from reconcilers.runtime.informer import Informer
from state import keys
from state.envelope import (
    SCHEDULER_FINALIZER,
    Obj,
    Ref,
    age_seconds,
    condition,
    ref,
    set_condition,
)
from state.errors import BadRequest, Conflict
from state.etcd import Delete, Put, absent, mod_revision_is
from state.instance_states import nova_state
from state.store import Store, dumps

FINALIZER = SCHEDULER_FINALIZER
#: how often an instance that fits nowhere is looked at again
RETRY_UNSCHEDULABLE = 2.0
#: seconds after which assignments believed current are read from etcd again
ASSIGNMENT_RECHECK = 60.0
#: reasons of a Scheduled=False condition that are Nova faults (the instance is in ERROR)
_FAULTS = ("NoValidHost", "InvalidSpec")


def _res_json(r: Resources) -> dict[str, int]:
    return {"vcpus": r.vcpus, "ramMiB": r.ram_mib, "diskGiB": r.disk_gib}


def _without(alloc: dict[str, Any], uid: str) -> dict[str, Any]:
    """A host's allocation with one instance's share given back."""
    instances = dict(alloc.get("instances", {}))
    freed = resources(instances.pop(uid, {}))
    return {"instances": instances, "used": _res_json(resources(alloc.get("used", {})) - freed)}


@dataclass
class Scheduler:
    store: Store
    view: ClusterView
    catalog: Catalog
    #: the Instance informer: reconciles read its cache (every write compares revisions,
    #: so a stale read costs a retry, never a wrong write)
    instances: Informer
    #: the networks, security groups and floating IPs the assignments' ``network`` is
    #: rendered from
    networks: NetworkCatalog
    weigher: str = "spread"
    #: seconds of retries before an instance that fits nowhere is put in ERROR
    no_valid_host_after: float = 30.0
    name: str = "scheduler"
    _placing: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    #: uid -> the assignment body known to be in etcd, re-checked every ASSIGNMENT_RECHECK s
    _assigned: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)
    _assigned_since: float = field(default_factory=time.monotonic, init=False, repr=False)
    #: uid -> when the last event about why it is not placed was recorded
    _said: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.weigher not in WEIGHERS:
            raise BadRequest(f"unknown weigher {self.weigher!r}; known: {', '.join(WEIGHERS)}")

    async def read_cluster(self) -> Cluster:
        await self.view.synced.wait()
        return self.view.snapshot()

    async def reconcile(self, key: Ref) -> Requeue | None:
        inst = self.instances.get(key) or await self.store.get_or_none(key)
        if inst is None:
            return None
        meta = inst["metadata"]
        if meta.get("deletionTimestamp"):
            return await self._release(inst)
        if FINALIZER not in (meta.get("finalizers") or []):
            meta["finalizers"] = [*(meta.get("finalizers") or []), FINALIZER]
            await self.store.update(inst, current=inst)
            return None  # the update's own event brings the key back
        rendered = await self._render(inst)
        if isinstance(rendered, str):
            await self._condition(inst, False, "InvalidSpec", rendered)
            await self._say(inst, "InvalidSpec", rendered)
            return None  # a change of the spec (or the flavor/image) brings it back
        known = inst.get("status", {}).get("host")
        if known:  # placed (the status is written after the allocation): keep it current
            alive = await self._host_liveness(inst, known)
            if not alive:
                if inst["spec"].get("evacuate"):
                    await self._evacuate(inst, known)
                    return Requeue(after=0)  # placed again, elsewhere
                return None  # marked; the host's return (or an evacuation) brings it back
            why = await self._resize_claim(inst, known, rendered)
            if why is not None:
                await self._condition(
                    inst, False, "ResizeFailed", f"No valid host was found. {why}"
                )
                return Requeue(after=RETRY_UNSCHEDULABLE)
            await self._ensure_assignment(known, rendered)
            return None
        await self.view.synced.wait()
        host = self.view.snapshot().host_of(meta["uid"])
        if host is None and self.networks.ports_pending(inst):
            return None  # the network reconciler's status write brings it back
        if host is None:
            claim = await self._claim(inst, rendered)
            if isinstance(claim, str):
                waited = age_seconds(meta.get("creationTimestamp"))
                if waited < self.no_valid_host_after:
                    await self._condition(inst, False, "Unschedulable", claim)
                    await self._say(
                        inst,
                        "Unschedulable",
                        claim,
                        every=RETRY_UNSCHEDULABLE,
                        detail=f"; retrying every {RETRY_UNSCHEDULABLE:g} s, ERROR in "
                        f"{self.no_valid_host_after - waited:.0f} s if it still fits nowhere",
                    )
                else:
                    fault = f"No valid host was found. {claim}"
                    await self._condition(inst, False, "NoValidHost", fault)
                    await self._say(inst, "NoValidHost", fault)
                return Requeue(after=RETRY_UNSCHEDULABLE)
            self._said.pop(meta["uid"], None)
            return None
        await self._ensure_assignment(host, rendered)
        if inst.get("status", {}).get("host") != host:
            await self._condition(inst, True, "Scheduled", f"placed on {host}", host=host)
        return None

    async def _say(
        self, inst: Obj, reason: str, message: str, every: float = 0.0, detail: str = ""
    ) -> None:
        """Records why the instance is not placed (``message`` + ``detail``) as an event:
        when ``reason`` and ``message`` differ from its Scheduled condition as read, or
        ``every`` seconds (0: never again) after the last such event."""
        uid = inst["metadata"]["uid"]
        known = condition(inst, "Scheduled") or {}
        last = self._said.get(uid)
        changed = (known.get("reason"), known.get("message")) != (reason, message)
        due = last is None or (every and time.monotonic() - last >= every * 0.9)
        if not changed and not due:
            return
        self._said[uid] = time.monotonic()
        await self.store.record_event(inst, "Warning", reason, message + detail)

    async def _render(self, inst: Obj) -> dict[str, Any] | str:
        """The assignment hostd converges, or why it cannot be made."""
        spec, meta = inst["spec"], inst["metadata"]
        flavor = await self.catalog.flavor(spec["flavor"])
        if flavor is None:
            return f"flavor {spec['flavor']!r} not found"
        image = await self.catalog.image(meta["project"], spec["image"])
        if image is None:
            return f"image {spec['image']!r} not found"
        fs, im = flavor["spec"], image["spec"]
        if im.get("diskFormat") in ("aki", "ari"):
            return f"image {spec['image']!r} is a {im['diskFormat']} (a kernel or ramdisk), not bootable"
        boot: dict[str, Any] = {}
        for ref_field, part in (("kernelImage", "kernel"), ("ramdiskImage", "ramdisk")):
            if im.get(ref_field):
                found = await self.catalog.image(meta["project"], im[ref_field])
                if found is None:
                    return f"{part} image {im[ref_field]!r} of image {spec['image']!r} not found"
                boot[part] = {
                    "name": im[ref_field],
                    "uid": found["metadata"]["uid"],
                    **found["spec"],
                }
        if fs["diskGiB"] and im.get("minDiskGiB", 0) > fs["diskGiB"]:
            return f"flavor {spec['flavor']!r} is too small for image {spec['image']!r} (needs {im['minDiskGiB']} GiB disk)"
        if im.get("minRamMiB", 0) > fs["ramMiB"]:
            return f"flavor {spec['flavor']!r} is too small for image {spec['image']!r} (needs {im['minRamMiB']} MiB RAM)"
        return {
            "uid": meta["uid"],
            "project": meta["project"],
            "name": meta["name"],
            "generation": meta["generation"],
            "flavor": {
                "name": spec["flavor"],
                **{k: fs[k] for k in ("vcpus", "ramMiB", "diskGiB")},
                **({"extraSpecs": fs["extraSpecs"]} if fs.get("extraSpecs") else {}),
            },
            "image": {"name": spec["image"], "uid": image["metadata"]["uid"], **im, **boot},
            **({"hostname": spec["hostname"]} if spec.get("hostname") else {}),
            **({"network": net} if (net := self.networks.render(inst)) else {}),
            "powerState": spec.get("powerState", "running"),
            "reboot": spec.get("reboot", {"generation": 0}),
            "rebuild": spec.get("rebuild", {"generation": 0}),
            "resize": spec.get("resize", {"generation": 0}),
            **(
                {"snapshot": await self._snapshot(meta["project"], spec)}
                if spec.get("snapshot")
                else {}
            ),
        }

    async def _snapshot(self, project: str, spec: dict[str, Any]) -> dict[str, Any]:
        """The snapshot asked of the host: its generation and the uid of the Image the disk
        goes into ("" when that Image is gone)."""
        asked = spec["snapshot"]
        target = await self.catalog.image(project, asked["image"])
        uid = target["metadata"]["uid"] if target is not None else ""
        return {"generation": asked["generation"], "image": asked["image"], "imageUid": uid}

    async def _claim(self, inst: Obj, rendered: dict[str, Any]) -> HostState | str:
        """Allocates the instance on the best host: the host, or why none fits.

        Choosing is serialised in this process and shows the allocation to the next
        choice at once (``reserve``), so that placements in flight do not pick the
        same room; their writes then run side by side. The allocation, the
        assignment and the status are one transaction that compares the allocation's
        revision: a placement that lost a race raises Conflict and is retried.
        """
        spec, uid = inst["spec"], inst["metadata"]["uid"]
        need = resources(rendered["flavor"])
        extra_specs = tuple(sorted(rendered["flavor"].get("extraSpecs", {}).items()))
        image_props = tuple(sorted((rendered["image"].get("properties") or {}).items()))
        policy, members = await self._server_group(inst)
        req = Request(
            uid=uid,
            resources=need,
            zone=spec.get("availabilityZone"),
            required_traits=required_traits(extra_specs, image_props),
            group_members=members,
            group_policy=policy,
            extra_specs=extra_specs,
            image_properties=image_props,
        )
        async with self._placing:
            cluster = self.view.snapshot()
            choice = choose(list(cluster.hosts.values()), req, WEIGHERS[self.weigher])
            if choice.host is None:
                return choice.reason()
            host = choice.host.name
            alloc, rev = cluster.allocs.get(host, ({}, 0))
            instances = {**alloc.get("instances", {}), uid: _res_json(need)}
            new_alloc = {"instances": instances, "used": _res_json(choice.host.used + need)}
            self.view.reserve(host, new_alloc)
        status = copy.deepcopy(inst.get("status") or {})
        self._scheduled(inst, True, "Scheduled", f"placed on {host}", host)(status)
        compares, status_put = self.store.status_write(inst, status)
        alloc_key = keys.alloc(host)
        res = await self.store.txn(
            [*compares, mod_revision_is(alloc_key, rev) if rev else absent(alloc_key)],
            [
                Put(alloc_key, dumps(new_alloc)),
                Put(keys.assign(host, uid), dumps(rendered)),
                status_put,
            ],
        )
        if not res.succeeded:
            await self.view.refresh(host)
            raise Conflict(f"allocation of {host} changed while placing {inst['metadata']['name']}")
        self.view.claimed(host, new_alloc, res.revision)
        self._assigned[uid] = dumps(rendered)
        return choice.host

    async def _server_group(self, inst: Obj) -> tuple[str | None, frozenset[str]]:
        """The policy of the instance's server group and the uids of its other members."""
        group = inst["spec"].get("serverGroup")
        if not group:
            return None, frozenset()
        project = inst["metadata"]["project"]
        found = await self.store.get_or_none(Ref("ServerGroup", project, group))
        if found is None:
            return None, frozenset()
        members = frozenset(
            o["metadata"]["uid"]
            for o in self.instances.list()
            if o["metadata"].get("project") == project
            and o["spec"].get("serverGroup") == group
            and o["metadata"]["uid"] != inst["metadata"]["uid"]
        )
        return found["spec"].get("policy"), members

    async def _host_liveness(self, inst: Obj, host: str) -> bool:
        """Whether the instance's host is alive; marks the instance (``hostStatus``, the
        ``HostAlive`` condition) when that changed."""
        await self.view.synced.wait()
        forced_down = self.view.settings.get(host, {}).get("forcedDown", False)
        alive = host in self.view.records and host in self.view.alive and not forced_down
        meta = inst["metadata"]

        def mutate(status: dict[str, Any]) -> bool:
            if status.get("host") != host:
                return False
            before = dict(status, conditions=list(status.get("conditions", [])))
            status["hostStatus"] = "UP" if alive else "DOWN"
            set_condition(
                status,
                "HostAlive",
                alive,
                "HostUp" if alive else "HostDown",
                f"host {host} is {'alive' if alive else 'down: its lease expired'}",
            )
            return status != before

        if inst.get("status", {}).get("hostStatus") != ("UP" if alive else "DOWN"):
            await self.store.patch_status(
                Ref("Instance", meta["project"], meta["name"]), mutate, uid=meta["uid"]
            )
        return alive

    async def _evacuate(self, inst: Obj, host: str) -> None:
        """Frees the instance's place on its dead host so that it is placed (and built from
        its image) on another."""
        meta = inst["metadata"]
        uid = meta["uid"]
        self._assigned.pop(uid, None)
        async with self._placing:
            cluster = await self.read_cluster()
            alloc, rev = cluster.allocs.get(host, ({}, 0))
            if uid in alloc.get("instances", {}):
                released = _without(alloc, uid)
                res = await self.store.txn(
                    [mod_revision_is(keys.alloc(host), rev)],
                    [Put(keys.alloc(host), dumps(released)), Delete(keys.assign(host, uid))],
                )
                if not res.succeeded:
                    raise Conflict(f"allocation of {host} changed while evacuating {uid}")
                self.view.claimed(host, released, res.revision)

        def mutate(status: dict[str, Any]) -> bool:
            if status.get("host") != host:
                return False
            for field_name in ("host", "hostStatus", "domainState"):
                status.pop(field_name, None)
            status["evacuatedFrom"] = host
            status["conditions"] = [
                c for c in status.get("conditions", []) if c.get("type") != "HostAlive"
            ]
            set_condition(status, "Scheduled", False, "Evacuating", f"evacuating from {host}")
            status.update(nova_state({"spec": inst["spec"], "status": status, "metadata": meta}))
            return True

        await self.store.patch_status(
            Ref("Instance", meta["project"], meta["name"]), mutate, uid=uid
        )
        await self.store.record_event(inst, "Warning", "Evacuated", f"host {host} is down")

    async def _resize_claim(self, inst: Obj, host: str, rendered: dict[str, Any]) -> str | None:
        """Brings the host's allocation for a placed instance to its flavor (a resize or its
        revert, on the same host): None when done, else why it does not fit."""
        uid = inst["metadata"]["uid"]
        need = resources(rendered["flavor"])
        had = self.view.allocs.get(host, ({}, 0))[0].get("instances", {}).get(uid)
        if had is None or resources(had) == need:
            return None  # the common case, without building the whole cluster
        async with self._placing:
            cluster = await self.read_cluster()
            alloc, rev = cluster.allocs.get(host, ({}, 0))
            had = alloc.get("instances", {}).get(uid)
            if had is None or resources(had) == need:
                return None
            state = cluster.hosts.get(host)
            if state is None:
                return f"host {host} is gone"
            old = resources(had)
            new_used = resources(alloc.get("used", {})) - old + need
            limit = state.limit
            grows = (
                need.vcpus > old.vcpus,
                need.ram_mib > old.ram_mib,
                need.disk_gib > old.disk_gib,
            )
            over = (
                new_used.vcpus > limit.vcpus,
                new_used.ram_mib > limit.ram_mib,
                new_used.disk_gib > limit.disk_gib,
            )
            if any(g and o for g, o in zip(grows, over, strict=True)):
                return f"flavor {rendered['flavor']['name']!r} does not fit on {host}"
            instances = {**alloc.get("instances", {}), uid: _res_json(need)}
            new_alloc = {"instances": instances, "used": _res_json(new_used)}
            res = await self.store.txn(
                [mod_revision_is(keys.alloc(host), rev)],
                [Put(keys.alloc(host), dumps(new_alloc))],
            )
            if not res.succeeded:
                raise Conflict(f"allocation of {host} changed while resizing {uid}")
            self.view.claimed(host, new_alloc, res.revision)
        return None

    async def _ensure_assignment(self, host: str, rendered: dict[str, Any]) -> None:
        uid, body = rendered["uid"], dumps(rendered)
        if time.monotonic() - self._assigned_since > ASSIGNMENT_RECHECK:
            self._assigned.clear()  # look at etcd again now and then: nothing is trusted forever
            self._assigned_since = time.monotonic()
        if self._assigned.get(uid) == body:
            return
        key = keys.assign(host, uid)
        current = await self.store.etcd.get(key)
        if current is None or current.value != body:
            guard = mod_revision_is(key, current.mod_revision) if current else absent(key)
            res = await self.store.txn([guard], [Put(key, body)])
            if not res.succeeded:
                raise Conflict(f"assignment {uid} changed while rendering it")
        self._assigned[uid] = body

    async def _release(self, inst: Obj) -> Requeue | None:
        meta = inst["metadata"]
        uid = meta["uid"]
        self._assigned.pop(uid, None)
        self._said.pop(uid, None)
        r = Ref("Instance", meta["project"], meta["name"])
        cluster = await self.read_cluster()
        host = cluster.host_of(uid)
        if host is not None:
            assignment = await self.store.etcd.get(keys.assign(host, uid))
            if assignment is not None:
                await self.store.txn([], [Delete(keys.assign(host, uid))])
            removed = inst.get("status", {}).get("domainState") == "removed"
            state = cluster.hosts.get(host)
            if not removed and state is not None and state.alive:
                return None  # hostd's status report brings the key back
            alloc, rev = cluster.allocs[host]
            released = _without(alloc, uid)
            res = await self.store.txn(
                [mod_revision_is(keys.alloc(host), rev)], [Put(keys.alloc(host), dumps(released))]
            )
            if not res.succeeded:
                raise Conflict(f"allocation of {host} changed while releasing {meta['name']}")
            self.view.claimed(host, released, res.revision)
        await self.store.remove_finalizer(r, FINALIZER)
        return None

    async def _condition(
        self, inst: Obj, ok: bool, reason: str, message: str, host: str | None = None
    ) -> None:
        meta = inst["metadata"]
        await self.store.patch_status(
            Ref("Instance", meta["project"], meta["name"]),
            self._scheduled(inst, ok, reason, message, host),
            uid=meta["uid"],
        )

    @staticmethod
    def _scheduled(
        inst: Obj, ok: bool, reason: str, message: str, host: str | None
    ) -> Callable[[dict[str, Any]], bool]:
        """The status change of a placement (or of why there is none)."""
        meta = inst["metadata"]

        def mutate(status: dict[str, Any]) -> bool:
            before = dict(status)
            set_condition(status, "Scheduled", ok, reason, message)
            if host is not None:  # placed on a live host, in the same write
                status["host"] = host
                status["hostStatus"] = "UP"
                set_condition(status, "HostAlive", True, "HostUp", f"host {host} is alive")
            status.update(nova_state({"spec": inst["spec"], "status": status, "metadata": meta}))
            if reason in _FAULTS:
                status["fault"] = {"code": 500, "message": message}
            else:
                status.pop("fault", None)
            return status != before

        return mutate


def requeue_on_liveness(
    controller: Controller[Ref], instances: Informer
) -> Callable[[str, bool], None]:
    """A handler for the cluster view: when a host comes or goes, its instances are
    reconciled (marked, and evacuated if asked)."""

    def handler(host: str, alive: bool) -> None:
        for o in instances.list():
            if (o.get("status") or {}).get("host") == host:
                controller.queue.add(ref(o))

    return handler


def requeue_unplaced(controller: Controller[Ref], instances: Informer) -> Callable[[], None]:
    """A handler for the catalog: a flavor or image appeared or changed, so instances not
    yet placed (waiting for one, or refused because of one) are looked at again."""

    def handler() -> None:
        for o in instances.list():
            if not (o.get("status") or {}).get("host"):
                controller.queue.add(ref(o))

    return handler
