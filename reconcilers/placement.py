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
from dataclasses import dataclass, field, replace
from functools import cached_property


@dataclass(frozen=True)
class Resources:
    vcpus: int = 0
    ram_mib: int = 0
    disk_gib: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpus + other.vcpus, self.ram_mib + other.ram_mib, self.disk_gib + other.disk_gib
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpus - other.vcpus, self.ram_mib - other.ram_mib, self.disk_gib - other.disk_gib
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
    #: key/value properties of the host's aggregates, matched by flavor extra specs
    metadata: tuple[tuple[str, str], ...] = ()
    virt_type: str = ""
    arch: str = "x86_64"

    @cached_property
    def limit(self) -> Resources:
        """What the host may hold: capacity times the allocation ratios, less reserved."""
        return Resources(
            int(self.capacity.vcpus * self.cpu_ratio) - self.reserved.vcpus,
            int(self.capacity.ram_mib * self.ram_ratio) - self.reserved.ram_mib,
            int(self.capacity.disk_gib * self.disk_ratio) - self.reserved.disk_gib,
        )

    @cached_property
    def free(self) -> Resources:
        lim = self.limit
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
    #: the flavor's extra specs and the image's properties
    extra_specs: tuple[tuple[str, str], ...] = ()
    image_properties: tuple[tuple[str, str], ...] = ()


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
    free, need = host.free, req.resources
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


AGGREGATE_SPEC = "aggregate_instance_extra_specs:"


def aggregate_filter(host: HostState, req: Request) -> str | None:
    """Flavor extra specs ``aggregate_instance_extra_specs:<key>=<value>`` must equal the
    host's aggregate metadata (a comma-separated value lists the choices)."""
    metadata = dict(host.metadata)
    for key, want in req.extra_specs:
        if key.startswith(AGGREGATE_SPEC):
            name = key.removeprefix(AGGREGATE_SPEC)
            if metadata.get(name) not in [w.strip() for w in want.split(",")]:
                return f"aggregate metadata {name}={metadata.get(name)!r}, flavor wants {want!r}"
    return None


def image_properties_filter(host: HostState, req: Request) -> str | None:
    """The image's ``hw_architecture`` and ``img_hv_type``, when set, must be the host's."""
    props = dict(req.image_properties)
    arch, hv = props.get("hw_architecture"), props.get("img_hv_type")
    if arch and arch != host.arch:
        return f"image needs architecture {arch}, host is {host.arch}"
    if hv and hv != host.virt_type:
        return f"image needs hypervisor {hv}, host runs {host.virt_type}"
    return None


def required_traits(*specs: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """Traits asked for as ``trait:<NAME>=required`` in flavor extra specs or image
    properties."""
    return frozenset(
        k.removeprefix("trait:")
        for spec in specs
        for k, v in spec
        if k.startswith("trait:") and v == "required"
    )


FILTERS: tuple[Filter, ...] = (
    alive_filter,
    enabled_filter,
    zone_filter,
    traits_filter,
    aggregate_filter,
    image_properties_filter,
    server_group_filter,
    resources_filter,
)


def spread(host: HostState) -> float:
    """Prefer the host with the most free RAM, like Nova's default RAM weigher."""
    return float(host.free.ram_mib)


def pack(host: HostState) -> float:
    """Prefer the fullest host that still fits."""
    return -float(host.free.ram_mib)


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
    """The best host for ``req`` (a soft server group policy first, then ``weigher``,
    ties broken by name), with the reasons others failed.

    Only server group members placed on some host count: the first member of an
    affinity group may go anywhere."""
    if req.group_members:
        placed = req.group_members & frozenset().union(*(h.instances for h in hosts))
        req = replace(req, group_members=placed)
    active = [f for f in filters if _applies(f, req)]
    fits: list[HostState] = []
    rejected: dict[str, str] = {}
    for host in hosts:
        for f in active:
            why = f(host, req)
            if why is not None:
                rejected[host.name] = why
                break
        else:
            fits.append(host)
    if not fits:
        return Choice(None, rejected)
    if req.group_policy in ("soft-affinity", "soft-anti-affinity"):
        best = min(fits, key=lambda h: (-_group_preference(h, req), -weigher(h), h.name))
    else:
        best = min(fits, key=lambda h: (-weigher(h), h.name))
    return Choice(best, rejected)


def _applies(f: Filter, req: Request) -> bool:
    """Whether a filter can refuse any host for this request (the others are skipped)."""
    if f is zone_filter:
        return bool(req.zone)
    if f is traits_filter:
        return bool(req.required_traits)
    if f is aggregate_filter:
        return any(k.startswith(AGGREGATE_SPEC) for k, _ in req.extra_specs)
    if f is image_properties_filter:
        return bool(req.image_properties)
    if f is server_group_filter:
        return req.group_policy in ("affinity", "anti-affinity")
    return True


def _group_preference(host: HostState, req: Request) -> int:
    """The soft server group policies, before any other weigher: as many members (soft
    affinity) or as few (soft anti-affinity) on the host as can be."""
    here = len(host.instances & req.group_members)
    if req.group_policy == "soft-affinity":
        return here
    if req.group_policy == "soft-anti-affinity":
        return -here
    return 0
