"""The virt driver interface of hostd, in desired-state words.

Owns: the ``VirtDriver`` protocol, its records (``Observed``,
``HostCapacity``, ``Capabilities``) and the power-state vocabulary hostd
converges. Implementations live in their own modules (``libvirt_driver``).

Must never: import libvirt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from hostd.render import DomainSpec

RUNNING = "running"
STOPPED = "stopped"
PAUSED = "paused"
SUSPENDED = "suspended"
#: states a spec may ask for
POWER_STATES = (RUNNING, STOPPED, PAUSED, SUSPENDED)
#: observed only
CRASHED = "crashed"
MISSING = "missing"


@dataclass(frozen=True)
class Capabilities:
    #: "qemu", "kvm" or "test"
    virt_type: str
    managed_save: bool
    live_events: bool


@dataclass(frozen=True)
class HostCapacity:
    vcpus: int
    ram_mib: int
    disk_gib: int


@dataclass(frozen=True)
class HostFacts:
    """What Nova's hypervisor view shows of a host besides its capacity."""

    #: libvirt's name of the hypervisor ("QEMU", "TEST")
    hypervisor_type: str
    #: its version as one number (major * 1,000,000 + minor * 1,000 + release)
    hypervisor_version: int
    #: arch, model, vendor, topology and features of the host CPU (Nova's cpu_info)
    cpu: dict


@dataclass(frozen=True)
class Observed:
    """What a domain of ours is, as the hypervisor reports it."""

    uid: str
    state: str
    #: the generation recorded in the domain's metadata when it was defined
    generation: int
    #: the instance's project and name, from the domain's metadata
    project: str = ""
    name: str = ""
    #: the hostd host that defined it
    host: str = ""
    #: from ``ensure``: the state it found the domain in before it acted ("" otherwise)
    was: str = ""


@dataclass(frozen=True)
class DomainEvent:
    uid: str
    state: str


class VirtDriver(Protocol):
    capabilities: Capabilities

    async def capacity(self) -> HostCapacity: ...

    async def facts(self) -> HostFacts: ...

    async def ensure(self, spec: DomainSpec, power: str) -> Observed:
        """Defines the domain as ``spec`` says (redefining if it differs) and brings it to ``power``."""
        ...

    async def reboot(self, uid: str, hard: bool) -> None: ...

    async def observe(self, uid: str) -> Observed:
        """The domain of ``uid``, or an Observed with state MISSING."""
        ...

    async def remove(self, uid: str) -> None:
        """Destroys and undefines the domain (and its managed save); absent is fine."""
        ...

    async def list(self) -> list[Observed]:
        """Every domain carrying desired's metadata."""
        ...

    def events(self) -> AsyncIterator[DomainEvent]:
        """Lifecycle changes of our domains as they happen."""
        ...

    async def close(self) -> None: ...
