"""The virt driver over libvirt: ``qemu:///system`` for real guests, ``test:///`` for simulated hosts.

Owns: every call into libvirt-python: defining, starting, pausing,
saving, destroying and undefining domains, mapping libvirt states to
desired's power states, and forwarding libvirt lifecycle events to asyncio.
Blocking libvirt calls run in a thread pool; the event loop never blocks.
libvirt's errors become ``state.errors`` here.

Must never: touch a domain without desired's metadata.
"""

from __future__ import annotations

import asyncio
import dataclasses
import grp
import pwd
import threading
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import libvirt

from hostd.file_access import ROOT_ONLY, FileAccess
from hostd.render import DomainSpec, read_metadata, render
from hostd.virt import (
    CRASHED,
    MISSING,
    PAUSED,
    RUNNING,
    STOPPED,
    SUSPENDED,
    Capabilities,
    DomainEvent,
    HostCapacity,
    HostFacts,
    Observed,
)
from state.errors import Transient

T = TypeVar("T")

_event_loop_started = threading.Lock()
_event_loop_running = False


def _start_libvirt_event_loop() -> None:
    """libvirt delivers events only while its default event loop runs: one thread per process."""
    global _event_loop_running
    with _event_loop_started:
        if _event_loop_running:
            return
        libvirt.virEventRegisterDefaultImpl()
        # libvirt prints every error to stderr unless told otherwise; ours are raised
        libvirt.registerErrorHandler(lambda ctx, err: None, None)

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_running = True


class VirtError(Transient):
    """libvirt refused or failed an operation; retried with backoff by the caller."""


_SHARED_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="libvirt")


def _state_of(dom: Any) -> str:
    state, _ = dom.state()
    if state in (
        libvirt.VIR_DOMAIN_RUNNING,
        libvirt.VIR_DOMAIN_BLOCKED,
        libvirt.VIR_DOMAIN_SHUTDOWN,
    ):
        return RUNNING
    if state in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED):
        return PAUSED
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return CRASHED
    return SUSPENDED if dom.hasManagedSaveImage(0) else STOPPED


def cpu_info(capabilities: str, info: list[Any]) -> dict[str, Any]:
    """Nova's cpu_info from libvirt's capabilities XML and ``getInfo`` (which has the
    topology when the XML does not)."""
    cpu = ET.fromstring(capabilities).find("host/cpu")
    if cpu is None:
        cpu = ET.Element("cpu")
    topology = cpu.find("topology")
    return {
        "arch": cpu.findtext("arch") or str(info[0]),
        "model": cpu.findtext("model") or "",
        "vendor": cpu.findtext("vendor") or "",
        "topology": {
            "cores": int(topology.get("cores", 1)) if topology is not None else int(info[6]),
            "threads": int(topology.get("threads", 1)) if topology is not None else int(info[7]),
            "sockets": int(topology.get("sockets", 1)) if topology is not None else int(info[5]),
        },
        # <feature name="..."/> on real hosts; flags as elements of <features> on others
        "features": sorted(
            [str(f.get("name")) for f in cpu.findall("feature") if f.get("name")]
            + [f.tag for f in cpu.findall("features/*")]
        ),
    }


def qemu_access(capabilities: str, virt_type: str) -> FileAccess:
    """QEMU's user and group for domains of ``virt_type``, from the DAC label in libvirt's
    capabilities XML (``+64055:+64055``, or names); root's when there is none (the
    test driver's)."""
    for model in ET.fromstring(capabilities).findall("host/secmodel"):
        if model.findtext("model") != "dac":
            continue
        for label in model.findall("baselabel"):
            if label.get("type") == virt_type and label.text:
                user, _, group = label.text.partition(":")
                return FileAccess(_id(user, pwd.getpwnam), _id(group, grp.getgrnam))
    return ROOT_ONLY


def _id(text: str, by_name: Callable[[str], Any]) -> int:
    """A DAC label's user or group: ``+<number>``, a number, or a name."""
    text = text.strip().removeprefix("+")
    if text.isdigit():
        return int(text)
    try:
        return int(by_name(text)[2])
    except KeyError:
        raise VirtError(
            f"libvirt runs QEMU as {text!r}, which this machine does not know"
        ) from None


class LibvirtDriver:
    """One libvirt connection; see the module docstring."""

    def __init__(
        self, uri: str, virt_type: str, *, disk_gib: int = 0, pool: ThreadPoolExecutor | None = None
    ) -> None:
        """``disk_gib``: the instance disk this host offers (libvirt does not say)."""
        _start_libvirt_event_loop()
        self.uri = uri
        self.disk_gib = disk_gib
        self._pool = pool or _SHARED_POOL
        try:
            self._conn = libvirt.open(uri)
            host_capabilities = self._conn.getCapabilities()
        except libvirt.libvirtError as exc:
            raise VirtError(f"cannot connect to libvirt at {uri}: {exc}") from None
        self.capabilities = Capabilities(virt_type=virt_type, managed_save=True, live_events=True)
        #: who may open the files of this driver's guests besides root
        self.file_access = qemu_access(host_capabilities, virt_type)
        self._listeners: list[Callable[[DomainEvent], None]] = []
        self._callback_id = self._conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None
        )

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except libvirt.libvirtError as exc:
            raise VirtError(f"libvirt ({self.uri}): {exc.get_error_message()}") from None

    # --- events -----------------------------------------------------------------

    def _on_lifecycle(self, conn: Any, dom: Any, event: int, detail: int, opaque: Any) -> None:
        try:
            meta = read_metadata(dom.XMLDesc(0))
            state = _state_of(dom)
        except libvirt.libvirtError:
            return  # undefined while we looked: the next list tells
        if meta is None:
            return
        for listener in list(self._listeners):
            listener(DomainEvent(meta["uid"], state))

    async def events(self) -> AsyncIterator[DomainEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[DomainEvent] = asyncio.Queue()

        def listener(ev: DomainEvent) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ev)

        self._listeners.append(listener)
        try:
            while True:
                yield await queue.get()
        finally:
            self._listeners.remove(listener)

    # --- queries ------------------------------------------------------------------

    async def capacity(self) -> HostCapacity:
        def read() -> HostCapacity:
            info = (
                self._conn.getInfo()
            )  # [model, memory MiB, cpus, mhz, nodes, sockets, cores, threads]
            return HostCapacity(vcpus=int(info[2]), ram_mib=int(info[1]), disk_gib=self.disk_gib)

        return await self._run(read)

    async def facts(self) -> HostFacts:
        def read() -> HostFacts:
            info = self._conn.getInfo()
            return HostFacts(
                hypervisor_type=str(self._conn.getType()),
                hypervisor_version=int(self._conn.getVersion()),
                cpu=cpu_info(self._conn.getCapabilities(), info),
            )

        return await self._run(read)

    def _lookup(self, uid: str) -> Any | None:
        try:
            return self._conn.lookupByUUIDString(uid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _observe(self, dom: Any) -> Observed | None:
        meta = read_metadata(dom.XMLDesc(0))
        if meta is None:
            return None
        return Observed(
            meta["uid"],
            _state_of(dom),
            int(meta.get("generation") or 0),
            project=meta.get("project", ""),
            name=meta.get("name", ""),
            host=meta.get("host", ""),
        )

    async def observe(self, uid: str) -> Observed:
        def read() -> Observed:
            dom = self._lookup(uid)
            try:
                seen = self._observe(dom) if dom is not None else None
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                seen = None  # undefined between the look-up and the read
            return seen or Observed(uid, MISSING, 0)

        return await self._run(read)

    async def list(self) -> list[Observed]:
        def read() -> list[Observed]:
            out = []
            for dom in self._conn.listAllDomains(0):
                if not dom.name().startswith("desired-"):
                    continue
                try:
                    seen = self._observe(dom)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        continue  # undefined while we listed
                    raise
                if seen is not None:
                    out.append(seen)
            return out

        return await self._run(read)

    # --- changes ------------------------------------------------------------------

    async def ensure(self, spec: DomainSpec, power: str) -> Observed:
        return await self._run(self._ensure, spec, power)

    def _ensure(self, spec: DomainSpec, power: str) -> Observed:
        dom = self._lookup(spec.uid)
        was = MISSING
        if dom is not None:
            seen = self._observe(dom)
            was = seen.state if seen is not None else MISSING
            if seen is not None and seen.generation != spec.generation:
                # a new generation: the definition changes while the domain is down
                if dom.isActive():
                    dom.destroy()
                if dom.hasManagedSaveImage(0):
                    dom.managedSaveRemove(0)
                dom = self._conn.defineXML(render(spec))
        else:
            dom = self._conn.defineXML(render(spec))
        self._converge_power(dom, power)
        observed = self._observe(dom)
        assert observed is not None
        return dataclasses.replace(observed, was=was)

    def _converge_power(self, dom: Any, power: str) -> None:
        state = _state_of(dom)
        if state == power:
            return
        if power == RUNNING:
            if state == PAUSED:
                dom.resume()
            else:  # stopped, suspended (create restores the managed save), crashed
                if state == CRASHED:
                    dom.destroy()
                dom.create()
        elif power == STOPPED:
            if dom.isActive():
                dom.destroy()
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
        elif power == PAUSED:
            if not dom.isActive():
                dom.create()  # restores a managed save if there is one
            dom.suspend()
        elif power == SUSPENDED:
            if not dom.isActive():
                dom.create()
                dom.suspend()
            dom.managedSave(0)
        else:
            raise ValueError(f"unknown power state {power!r}")

    async def reboot(self, uid: str, hard: bool) -> None:
        def act() -> None:
            dom = self._lookup(uid)
            if dom is None or not dom.isActive():
                return
            if hard:
                dom.reset(0)
            else:
                dom.reboot(0)

        await self._run(act)

    async def remove(self, uid: str) -> None:
        def act() -> None:
            dom = self._lookup(uid)
            if dom is None:
                return
            if dom.isActive():
                dom.destroy()
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)

        await self._run(act)

    async def close(self) -> None:
        def act() -> None:
            try:
                self._conn.domainEventDeregisterAny(self._callback_id)
            finally:
                self._conn.close()

        await self._run(act)
