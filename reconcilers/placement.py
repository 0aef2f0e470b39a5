"""Pure placement: which hosts can take an instance, and which of them is best.

Owns: ``HostState`` (capacity, allocation, placement settings of one host),
``Request`` (what an instance needs), the filters (each a small pure
function returning why a host does not fit, or None) and the weighers (a
score per host; higher wins). Nova's scheduler filters and weighers, as
plain functions.

Must never: do I/O; the scheduler reconciler reads state and writes the
choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Resources:
    vcpus: int = 0
    ram_mib: int = 0
    disk_gib: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpus + other.vcpus, self.ram_mib + other.ram_mib, self.disk_gib + other.disk_gib
        )


@dataclass(frozen=True)
class HostState:
    name: str
    capacity: Resources
    used: Resources
    zone: str = "nova"
    alive: bool = True
    enabled: bool = True
    forced_down: bool = False
    cpu_ratio: float = 16.0
    ram_ratio: float = 1.5
    disk_ratio: float = 1.0
    reserved: Resources = field(default_factory=Resources)
    traits: frozenset[str] = frozenset()
    #: uids of the instances placed here
    instances: frozenset[str] = frozenset()

    def limit(self) -> Resources:
        return Resources(
            int(self.capacity.vcpus * self.cpu_ratio) - self.reserved.vcpus,
            int(self.capacity.ram_mib * self.ram_ratio) - self.reserved.ram_mib,
            int(self.capacity.disk_gib * self.disk_ratio) - self.reserved.disk_gib,
        )

    def free(self) -> Resources:
        lim = self.limit()
        return Resources(
            lim.vcpus - self.used.vcpus,
            lim.ram_mib - self.used.ram_mib,
            lim.disk_gib - self.used.disk_gib,
        )


@dataclass(frozen=True)
class Request:
    uid: str
    resources: Resources
    zone: str | None = None
    required_traits: frozenset[str] = frozenset()
    #: uids of the other members of the instance's server group, and its policy
    group_members: frozenset[str] = frozenset()
    group_policy: str | None = None


Filter = Callable[[HostState, Request], str | None]


def alive_filter(host: HostState, req: Request) -> str | None:
    if not host.alive or host.forced_down:
        return "host is down"
    return None


def enabled_filter(host: HostState, req: Request) -> str | None:
    return None if host.enabled else "host is disabled"


def zone_filter(host: HostState, req: Request) -> str | None:
    if req.zone and host.zone != req.zone:
        return f"not in availability zone {req.zone}"
    return None


def resources_filter(host: HostState, req: Request) -> str | None:
    free, need = host.free(), req.resources
    if need.vcpus > free.vcpus:
        return f"needs {need.vcpus} vCPUs, {free.vcpus} free"
    if need.ram_mib > free.ram_mib:
        return f"needs {need.ram_mib} MiB RAM, {free.ram_mib} free"
    if need.disk_gib > free.disk_gib:
        return f"needs {need.disk_gib} GiB disk, {free.disk_gib} free"
    return None


def traits_filter(host: HostState, req: Request) -> str | None:
    missing = req.required_traits - host.traits
    return f"lacks traits {', '.join(sorted(missing))}" if missing else None


def server_group_filter(host: HostState, req: Request) -> str | None:
    members_here = host.instances & req.group_members
    if req.group_policy == "anti-affinity" and members_here:
        return "a member of the server group is here (anti-affinity)"
    if req.group_policy == "affinity" and req.group_members and not members_here:
        return "the server group's members are elsewhere (affinity)"
    return None


FILTERS: tuple[Filter, ...] = (
    alive_filter,
    enabled_filter,
    zone_filter,
    traits_filter,
    server_group_filter,
    resources_filter,
)


def spread(host: HostState) -> float:
    """Prefer the host with the most free RAM, like Nova's default RAM weigher."""
    return float(host.free().ram_mib)


def pack(host: HostState) -> float:
    """Prefer the fullest host that still fits."""
    return -float(host.free().ram_mib)


WEIGHERS: dict[str, Callable[[HostState], float]] = {"spread": spread, "pack": pack}


@dataclass(frozen=True)
class Choice:
    host: HostState | None
    #: host name -> why it was filtered out
    rejected: dict[str, str]

    def reason(self) -> str:
        if not self.rejected:
            return "there are no hosts"
        counts: dict[str, int] = {}
        for why in self.rejected.values():
            key = why.split(",")[0] if "needs" in why else why
            counts[key] = counts.get(key, 0) + 1
        return "; ".join(f"{n} host(s): {why}" for why, n in sorted(counts.items()))


def choose(
    hosts: Sequence[HostState],
    req: Request,
    weigher: Callable[[HostState], float] = spread,
    filters: Sequence[Filter] = FILTERS,
) -> Choice:
    """The best host for ``req`` (ties broken by name), with the reasons others failed."""
    fits: list[HostState] = []
    rejected: dict[str, str] = {}
    for host in hosts:
        for f in filters:
            why = f(host, req)
            if why is not None:
                rejected[host.name] = why
                break
        else:
            fits.append(host)
    if not fits:
        return Choice(None, rejected)
    best = max(fits, key=lambda h: (weigher(h), [-ord(c) for c in h.name]))
    return Choice(best, rejected)
