"""hostd's agent: one host's registration, heartbeat and the convergence of its assignments.

Inputs: ``/desired/v1/assign/<host>/`` (the only keys it reads), the virt
driver's domains and lifecycle events.

Outputs: the host record ``/hosts/<host>`` and ``/alive/<host>`` (bound to a
lease kept alive every TTL/3), a Host object if none exists, and each
assigned instance's status: ``host``, ``domainState``, ``powerState``,
``rebootGeneration``, ``snapshotGeneration``, ``observedGeneration`` and
the ``Ready`` condition; ``domainState: removed`` once an unassigned domain
is gone; events for drift repaired and snapshots that failed; snapshots'
data, uploaded to the image service.

Images: one that cannot be used as it is (bad checksum, size, format) puts the
instance in ERROR at once (a ``Terminal`` failure: not retried until the
assignment changes); one that cannot be read now (its file or server away) is
tried again after ``image_retry_delay`` seconds, doubling up to 60 s, each try
an ``ImageFetchFailed`` event on the instance, until ``image_fetch_timeout``
seconds after the first failure: then the instance is in ERROR with Nova's
fault "Image <id> could not be found.", terminally.

Invariants: a domain exists only while its assignment does (domains of ours
without one are reaped); every reconcile is level-based (it reads the
assignment and the domain, whatever event woke it); a domain is redefined
only when its definition changes, never for a power change.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any, Protocol

from hostd.assignments import Assignments
from hostd.images import ImageError, ImageFetchError
from hostd.net.driver import HostNetwork, interfaces
from hostd.render import DomainSpec
from hostd.storage import Storage
from hostd.virt import MISSING, PAUSED, RUNNING, STOPPED, SUSPENDED, VirtDriver
from reconcilers.runtime.controller import Controller, Requeue
from reconcilers.runtime.metrics import Metrics
from state import keys
from state.envelope import Ref, now, set_condition
from state.errors import AlreadyExists, DesiredError, NotFound, Terminal
from state.etcd import EtcdClient
from state.instance_states import nova_state
from state.store import Store, dumps

log = logging.getLogger(__name__)


#: power changes Nova refuses (409): (the domain's state, the asked state) -> why
REFUSED = {
    (STOPPED, PAUSED): "cannot pause a stopped instance: start it first",
    (STOPPED, SUSPENDED): "cannot suspend a stopped instance: start it first",
    (SUSPENDED, PAUSED): "cannot pause a suspended instance: resume it first",
    (PAUSED, SUSPENDED): "cannot suspend a paused instance: unpause it first",
}


def definition_digest(a: dict[str, Any]) -> int:
    """Changes exactly when the domain must be redefined: size, image, a rebuild or its
    network interfaces."""
    relevant = {
        "flavor": a["flavor"],
        "image": a["image"].get("uid"),
        "rebuild": a.get("rebuild", {}).get("generation", 0),
        "interfaces": [(i.mac, i.bridge, i.target) for i in interfaces(a)],
    }
    raw = json.dumps(relevant, sort_keys=True).encode()
    return int(hashlib.sha256(raw).hexdigest()[:12], 16)


#: the longest wait between two tries to read an unreadable image
_IMAGE_RETRY_MAX = 60.0


@dataclasses.dataclass
class _ImageTries:
    """An instance's image that could not be read: since when, how often, when next."""

    image: tuple[str, str]
    first: float
    tries: int = 0
    next_at: float = 0.0


def _instance(a: dict[str, Any]) -> dict[str, Any]:
    """The envelope events about an assignment's instance name."""
    return {
        "kind": "Instance",
        "metadata": {"name": a["name"], "project": a["project"], "uid": a["uid"]},
    }


class Uploads(Protocol):
    """Where snapshots go: the image service."""

    async def upload(self, uid: str, path: Path | None) -> None: ...


class HostAgent:
    name = "hostd"

    def __init__(
        self,
        etcd: EtcdClient,
        host: str,
        driver: VirtDriver,
        *,
        zone: str = "nova",
        lease_ttl: int = 10,
        resync: float = 30.0,
        workers: int = 4,
        storage: Storage | None = None,
        traits: tuple[str, ...] = (),
        uploads: Uploads | None = None,
        network: HostNetwork | None = None,
        image_fetch_timeout: float = 300.0,
        image_retry_delay: float = 2.0,
        metrics: Metrics | None = None,
    ) -> None:
        """``storage``: where real guests' images and disks live; None for simulated hosts.
        ``image_fetch_timeout``, ``image_retry_delay``: how long and how often an image that
        cannot be read is tried before its instance is put in ERROR (``state.config``).
        ``metrics``: where its controller counts reconciles and their failures.
        ``uploads``: where snapshots go (the image service; None: snapshots fail).
        ``network``: the host's bridges, DHCP, firewall and metadata proxy; None for
        simulated hosts (their domains name bridges nothing makes)."""
        self.network = network
        self.image_fetch_timeout = image_fetch_timeout
        self.image_retry_delay = image_retry_delay
        #: uid -> its image's failed reads, while they go on
        self._image_tries: dict[str, _ImageTries] = {}
        self.etcd = etcd
        self.storage = storage
        self.uploads = uploads
        self.traits = traits
        self.host = host
        self.driver = driver
        self.zone = zone
        self.lease_ttl = lease_ttl
        self.resync = resync
        self.store = Store(etcd)
        self.assignments = Assignments(etcd, host)
        self.controller: Controller[str] = Controller(
            self,
            [self.assignments],
            key_of=lambda a: a["uid"],
            workers=workers,
            resync=resync,
            metrics=metrics,
            events=self.store,
            obj_of=self._instance_of,
        )
        self._lease = 0
        #: what events about this host name (with its uid, once registered: readers of a
        #: Host's events match on it)
        self._host_obj: dict[str, Any] = {"kind": "Host", "metadata": {"name": host}}
        #: uid -> (project, name) of instances seen here, to report their removal
        self._known: dict[str, tuple[str, str]] = {}
        #: uid -> the Instance as this agent last wrote its status (hostd owns the fields
        #: it reads back: domain state, reboot, rebuild and resize counters): the next
        #: write starts from it without a read (and reads only if another wrote since)
        self._reported: dict[str, dict[str, Any]] = {}

    # --- registration and heartbeat ---------------------------------------------------

    async def register(self) -> None:
        cap = await self.driver.capacity()
        facts = await self.driver.facts()
        record = {
            "name": self.host,
            "zone": self.zone,
            "virtType": self.driver.capabilities.virt_type,
            "arch": platform.machine() or "x86_64",
            "traits": list(self.traits),
            "capacity": {"vcpus": cap.vcpus, "ramMiB": cap.ram_mib, "diskGiB": cap.disk_gib},
            "hypervisorType": facts.hypervisor_type,
            "hypervisorVersion": facts.hypervisor_version,
            "cpuInfo": facts.cpu,
            "hostIp": self.etcd.local_address(),
        }
        await self.etcd.put(keys.host(self.host), dumps(record))
        await self._beat()
        try:
            made = await self.store.create(
                {"kind": "Host", "metadata": {"name": self.host}, "spec": {"zone": self.zone}}
            )
        except AlreadyExists:
            made = await self.store.get(Ref("Host", None, self.host))
        self._host_obj["metadata"]["uid"] = made["metadata"]["uid"]

    async def _beat(self) -> None:
        self._lease = await self.etcd.lease_grant(self.lease_ttl)
        await self.etcd.put(keys.alive(self.host), b"1", lease=self._lease)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                await self.etcd.lease_keepalive(self._lease)
            except NotFound:
                log.warning("lease lost, registering again", extra={"host": self.host})
                await self._beat()
            except DesiredError as exc:
                log.warning("heartbeat failed: %s", exc, extra={"host": self.host})

    async def _domain_events(self) -> None:
        async for ev in self.driver.events():
            self.controller.queue.add(ev.uid)

    async def _reap(self) -> None:
        await self.assignments.synced.wait()
        while True:
            try:
                for observed in await self.driver.list():
                    if observed.host == self.host and self.assignments.get(observed.uid) is None:
                        self.controller.queue.add(observed.uid)
            except DesiredError as exc:
                log.warning("listing domains failed: %s", exc, extra={"host": self.host})
            for uid in self.storage.files.known() if self.storage else []:
                if self.assignments.get(uid) is None:
                    self.controller.queue.add(uid)
            await self._sync_network()
            await asyncio.sleep(self.resync)
            self._reported.clear()  # statuses are read from etcd again once per resync

    async def secure_storage(self) -> None:
        """The storage tree's owners and modes checked and repaired (``hostd.file_access``),
        each repair logged."""
        if self.storage is None:
            return
        for repaired in await asyncio.to_thread(self.storage.repair):
            log.warning("storage access repaired: %s", repaired, extra={"host": self.host})

    async def run(self) -> None:
        """Secures its storage, registers, then converges until cancelled; revokes the lease
        on the way out."""
        await self.secure_storage()
        await self.register()
        tasks = [
            asyncio.create_task(self.assignments.run()),
            asyncio.create_task(self.controller.run()),
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._domain_events()),
            asyncio.create_task(self._reap()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.controller.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._lease:
                await asyncio.shield(self.etcd.lease_revoke(self._lease))

    def console_log(self, uid: str) -> str | None:
        """The serial console log of an instance assigned here (None on simulated hosts)."""
        if self.storage is None or self.assignments.get(uid) is None:
            return None
        return str(self.storage.files.console_log(uid))

    async def _sync_network(self, uid: str | None = None) -> None:
        """Converges the host's network to its assignments; reports the drift it repaired.
        With ``uid``, only when the last converge did not cover that assignment as it is
        now (instances' reconciles ask; the resync converges whatever)."""
        if self.network is None:
            return
        if uid is not None and self.network.covers(uid, self.assignments.get(uid)):
            return
        try:
            repaired = await self.network.sync(self.assignments.list)
        except DesiredError as exc:
            log.warning("network: %s", exc, extra={"host": self.host})
            return
        for message in repaired:
            log.warning("network drift repaired: %s", message, extra={"host": self.host})
            await self.store.record_event(
                self._host_obj, "Warning", "NetworkDriftRepaired", message
            )

    # --- convergence ------------------------------------------------------------------

    def domain_spec(self, a: dict[str, Any]) -> DomainSpec:
        virt = self.driver.capabilities.virt_type
        spec = DomainSpec(
            uid=a["uid"],
            name=a["name"],
            project=a["project"],
            generation=definition_digest(a),
            vcpus=a["flavor"]["vcpus"],
            ram_mib=a["flavor"]["ramMiB"],
            virt_type=virt,
            vnc=virt != "test",
            host=self.host,
            interfaces=interfaces(a),
        )
        if self.storage is None:
            return spec
        files = self.storage.boot_files(a)
        return dataclasses.replace(
            spec,
            disk_path=files.disk,
            kernel=files.kernel,
            initrd=files.initrd,
            cmdline=files.cmdline,
            console_log=files.console_log,
        )

    def _settle_resize(self, a: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """The resize fields of the status after acting on a resize, confirm or revert.

        A change of flavor keeps the disk as it was (for a revert) and waits for
        confirmation; ``spec.resize`` with a higher generation confirms (the kept
        disk is dropped) or reverts (the kept disk is put back; the flavor is
        already the old one again).
        """
        uid, flavor = a["uid"], a["flavor"]["name"]
        files = self.storage.files if self.storage else None
        pending = status.get("resize")
        settled = status.get("resizeGeneration", 0)
        ask = a.get("resize") or {}
        if ask.get("generation", 0) > settled:
            if files is not None:
                if ask.get("action") == "revert" and pending:
                    files.revert_resize(uid)
                else:
                    files.confirm_resize(uid)
            return {"resize": None, "resizeGeneration": ask["generation"]}
        built = status.get("flavor")
        if built and built != flavor:
            if pending is None:
                if files is not None:
                    files.backup_for_resize(uid)
                pending = {"from": built, "to": flavor}
            else:
                pending = {**pending, "to": flavor}
        return {"resize": pending, "resizeGeneration": settled}

    async def _snapshot(self, a: dict[str, Any], snapshot: dict[str, Any]) -> None:
        """Uploads the disk (flattened; nothing for a simulated one) as the data of the Image
        the snapshot names. What retrying cannot mend is an event (the Image stays without
        data); the image service being away is retried."""
        uid = a["uid"]
        try:
            if self.uploads is None:
                raise ImageError("this host has no image service to upload snapshots to")
            if not snapshot.get("imageUid"):
                raise ImageError(f"image {snapshot.get('image')!r} of the snapshot is gone")
            if self.storage is None:
                await self.uploads.upload(snapshot["imageUid"], None)
                return
            path = await self.storage.files.snapshot(uid)
            try:
                await self.uploads.upload(snapshot["imageUid"], path)
            finally:
                path.unlink(missing_ok=True)
        except ImageError as exc:
            obj = {
                "kind": "Instance",
                "metadata": {"name": a["name"], "project": a["project"], "uid": uid},
            }
            await self.store.record_event(obj, "Warning", "SnapshotFailed", exc.message)

    def _instance_of(self, uid: str) -> dict[str, Any] | None:
        """The instance events about key ``uid`` name (its assignment's, or the one last
        seen here)."""
        a = self.assignments.get(uid)
        if a is not None:
            return _instance(a)
        if uid in self._known:
            project, name = self._known[uid]
            return _instance({"project": project, "name": name, "uid": uid})
        return None

    async def reconcile(self, uid: str) -> Requeue | None:
        a = self.assignments.get(uid)
        if a is None:
            return await self._remove(uid)
        self._known[uid] = (a["project"], a["name"])
        ref = Ref("Instance", a["project"], a["name"])
        want = a["powerState"]
        seen = self._reported.get(uid)
        if seen is None:  # not written by this process yet: read what is there
            seen = await self.store.get_or_none(ref)
        status = (seen or {}).get("status", {})
        spec = self.domain_spec(a)
        before = await self.driver.observe(uid)
        refused = REFUSED.get((before.state, want))
        if refused and status.get("domainState") == before.state:
            # asked of a domain hostd reported in that state (not drift): Nova refuses it too
            await self._not_ready(
                ref, uid, "InvalidTransition", 409, refused, domainState=before.state
            )
            return None  # a change of spec.powerState brings it back
        redefine = before.state != MISSING and before.generation != spec.generation
        if self.storage is not None and redefine:
            await self.driver.remove(uid)  # its disk may change: only while it is down
        resize = self._settle_resize(a, status)
        if self.storage is not None:
            waiting = await self._prepare(a, ref)
            if waiting is not None:
                return waiting
        await self._sync_network(uid)  # its bridge before its domain
        observed = await self.driver.ensure(spec, want)
        # drift: what hostd found (before, or when ensure looked: it may have changed in
        # between) is not what it reported, and hostd did not change it itself
        found = before.state if before.state not in (want, MISSING) else observed.was
        drifted = found not in (want, MISSING, "")
        if drifted and status.get("domainState") == want:
            await self.store.record_event(
                {
                    "kind": "Instance",
                    "metadata": {"name": a["name"], "project": a["project"], "uid": uid},
                },
                "Warning",
                "DriftRepaired",
                f"domain was {found} behind hostd's back; brought back to {want}",
            )
        reboot = a.get("reboot", {})
        rebooted = status.get("rebootGeneration", 0)
        if reboot.get("generation", 0) > rebooted:
            await self.driver.reboot(uid, hard=reboot.get("type") == "HARD")
            rebooted = reboot["generation"]
        snapshot = a.get("snapshot") or {}
        snapped = status.get("snapshotGeneration", 0)
        if snapshot.get("generation", 0) > snapped:
            await self._snapshot(a, snapshot)
            snapped = snapshot["generation"]

        def mutate(st: dict[str, Any]) -> bool:
            new = dict(
                st,
                host=self.host,
                domainState=observed.state,
                rebootGeneration=rebooted,
                rebuildGeneration=a.get("rebuild", {}).get("generation", 0),
                flavor=a["flavor"]["name"],
                image=a["image"]["name"],
                observedGeneration=a["generation"],
                **resize,
            )
            if new["resize"] is None:
                del new["resize"]
            if snapped:
                new["snapshotGeneration"] = snapped
            if observed.state == RUNNING and not new.get("launchedAt"):
                new["launchedAt"] = now()  # Nova's launched_at: first running
            new.pop("fault", None)
            if self.storage is not None:
                new["consoleLog"] = spec.console_log
            set_condition(
                new,
                "Ready",
                observed.state == want,
                "Converged" if observed.state == want else "Converging",
                f"domain is {observed.state} on {self.host}",
            )
            asked = {
                "powerState": want,
                "reboot": {**reboot, "generation": reboot.get("generation", 0)},
                "flavor": a["flavor"]["name"],
                "rebuild": a.get("rebuild", {}),
                "resize": a.get("resize", {}),
                "snapshot": snapshot,
            }
            new.update(nova_state({"spec": asked, "status": new, "metadata": {}}))
            if new == st:
                return False
            st.clear()
            st.update(new)
            return True

        reported = self._reported.get(uid)
        if reported is not None and not mutate(copy.deepcopy(reported["status"])):
            return None  # what this agent last wrote already says so: no read, no write
        written = await self.store.patch_status(ref, mutate, uid=uid, current=seen)
        if written is not None:
            self._reported[uid] = written
        return None

    async def _prepare(self, a: dict[str, Any], ref: Ref) -> Requeue | None:
        """The instance's images and disk made ready; a Requeue while its image cannot be
        read yet. Raises Terminal once the image cannot be used or read (the instance is
        then in ERROR with the fault)."""
        uid = a["uid"]
        image = (str(a["image"].get("uid")), str(a["image"].get("url")))
        tried = self._image_tries.get(uid)
        if tried is not None and tried.image != image:
            del self._image_tries[uid]  # another image now: its own tries
            tried = None
        if tried is not None and time.monotonic() < tried.next_at:
            return Requeue(after=tried.next_at - time.monotonic())  # woken early: wait on
        try:
            await self.storage.prepare(a)  # type: ignore[union-attr]
        except ImageFetchError as exc:
            return await self._image_unreadable(
                a, ref, tried or _ImageTries(image, time.monotonic()), exc
            )
        except ImageError as exc:
            self._image_tries.pop(uid, None)
            await self._not_ready(ref, uid, "Failed", 500, exc.message)
            raise Terminal(exc.message, _instance(a), "ImageFailed") from None
        self._image_tries.pop(uid, None)
        return None

    async def _image_unreadable(
        self, a: dict[str, Any], ref: Ref, tried: _ImageTries, exc: ImageFetchError
    ) -> Requeue:
        uid = a["uid"]
        tried.tries += 1
        waited = time.monotonic() - tried.first
        if waited >= self.image_fetch_timeout:
            self._image_tries.pop(uid, None)
            fault = f"Image {a['image'].get('uid')} could not be found."
            await self._not_ready(ref, uid, "Failed", 404, fault)
            raise Terminal(
                f"{fault} ({tried.tries} tries in {waited:.0f} s; the last: {exc.message})",
                _instance(a),
                "ImageNotFound",
            )
        delay = min(
            self.image_retry_delay * 2 ** (tried.tries - 1),
            _IMAGE_RETRY_MAX,
            max(self.image_fetch_timeout - waited, 0.0),
        )
        tried.next_at = time.monotonic() + delay
        self._image_tries[uid] = tried
        message = (
            f"try {tried.tries}: {exc.message}; next try in {delay:.1f} s (ERROR "
            f"{self.image_fetch_timeout - waited:.0f} s from now if it still fails)"
        )
        log.warning("image unreadable: %s", message, extra={"host": self.host, "uid": uid})
        await self.store.record_event(_instance(a), "Warning", "ImageFetchFailed", message)
        return Requeue(after=delay)

    async def _not_ready(
        self, ref: Ref, uid: str, reason: str, code: int, message: str, **fields: Any
    ) -> None:
        """Reports what keeps the instance from its spec: Ready=False, a fault, Nova's states."""
        self._reported.pop(uid, None)

        def mutate(st: dict[str, Any]) -> bool:
            before = json.dumps(st, sort_keys=True)
            set_condition(st, "Ready", False, reason, message)
            st["fault"] = {"code": code, "message": message}
            st.update(fields)
            st.update(nova_state({"status": st, "metadata": {}}))
            return json.dumps(st, sort_keys=True) != before

        await self.store.patch_status(ref, mutate, uid=uid)

    async def _remove(self, uid: str) -> Requeue | None:
        self._reported.pop(uid, None)
        self._image_tries.pop(uid, None)
        observed = await self.driver.observe(uid)
        if observed.state != MISSING and observed.host not in ("", self.host):
            return None  # another hostd's domain on a shared libvirt
        if observed.state != MISSING:
            await self.driver.remove(uid)
        if self.storage is not None:
            self.storage.files.remove(uid)
        await self._sync_network(uid)
        where = self._known.pop(uid, None) or (
            (observed.project, observed.name) if observed.name else None
        )
        if where is None:
            return None  # never ours to report: no domain, and not seen since start
        ref = Ref("Instance", where[0], where[1])

        def mutate(st: dict[str, Any]) -> bool:
            if st.get("domainState") == "removed" or st.get("host") not in (None, self.host):
                return False  # reported already, or the instance lives elsewhere now
            st["domainState"] = "removed"
            set_condition(st, "Ready", False, "Removed", f"domain removed from {self.host}")
            st.update(nova_state({"status": st, "metadata": {"deletionTimestamp": "set"}}))
            return True

        await self.store.patch_status(ref, mutate, uid=uid)
        return None
