"""Placement filters and weighers: pure, with hypothesis properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconcilers.cluster_view import with_aggregates
from reconcilers.placement import (
    HostState,
    Request,
    Resources,
    choose,
    pack,
    required_traits,
    spread,
)


def host(name: str, vcpus: int = 4, ram: int = 4096, disk: int = 40, **kw: object) -> HostState:
    kw.setdefault("cpu_ratio", 1.0)
    kw.setdefault("ram_ratio", 1.0)
    return HostState(name, Resources(vcpus, ram, disk), Resources(), **kw)  # type: ignore[arg-type]


def req(vcpus: int = 1, ram: int = 512, disk: int = 1, **kw: object) -> Request:
    return Request("u", Resources(vcpus, ram, disk), **kw)  # type: ignore[arg-type]


def test_filters_say_why() -> None:
    hosts = [
        host("dead", alive=False),
        host("off", enabled=False),
        host("small", ram=256),
        host("elsewhere", zone="az2"),
        host("ok"),
    ]
    choice = choose(hosts, req(zone="nova"))
    assert choice.host is not None and choice.host.name == "ok"
    assert choice.rejected == {
        "dead": "host is down",
        "off": "host is disabled",
        "small": "needs 512 MiB RAM, 256 free",
        "elsewhere": "not in availability zone nova",
    }
    none = choose(hosts[:4], req(zone="nova"))
    assert none.host is None
    assert "1 host(s): host is down" in none.reason()


def test_ratios_and_reserved() -> None:
    h = HostState(
        "h",
        Resources(2, 1000, 10),
        Resources(30, 0, 0),
        cpu_ratio=16.0,
        reserved=Resources(0, 100, 0),
    )
    assert h.free == Resources(2, 1400, 10)
    assert choose([h], req(vcpus=3)).host is None
    assert choose([h], req(vcpus=2, ram=1400)).host is not None


def test_server_group_policies() -> None:
    a = host("a", instances=frozenset({"m1"}))
    b = host("b")
    anti = choose([a, b], req(group_members=frozenset({"m1"}), group_policy="anti-affinity"))
    assert anti.host is not None and anti.host.name == "b"
    aff = choose([a, b], req(group_members=frozenset({"m1"}), group_policy="affinity"))
    assert aff.host is not None and aff.host.name == "a"
    # members not placed yet do not count: the first placed member may go anywhere
    unplaced = req(group_members=frozenset({"m2"}), group_policy="affinity")
    assert choose([b], unplaced).host is not None


def test_spread_and_pack() -> None:
    full = HostState("full", Resources(4, 4096, 40), Resources(0, 3000, 0), ram_ratio=1.0)
    empty = host("empty")
    assert choose([full, empty], req(), spread).host.name == "empty"  # type: ignore[union-attr]
    assert choose([full, empty], req(), pack).host.name == "full"  # type: ignore[union-attr]


@given(
    st.lists(st.tuples(st.integers(1, 8), st.integers(256, 8192)), min_size=1, max_size=6),
    st.lists(st.tuples(st.integers(1, 4), st.integers(64, 4096)), max_size=40),
)
def test_never_over_commits(capacities: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
    """Placing requests one after another never exceeds any host's limit."""
    hosts = {f"h{i}": host(f"h{i}", v, r) for i, (v, r) in enumerate(capacities)}
    for vcpus, ram in asks:
        choice = choose(list(hosts.values()), req(vcpus, ram, 0))
        if choice.host is None:
            assert all(h.free.vcpus < vcpus or h.free.ram_mib < ram for h in hosts.values())
            continue
        h = choice.host
        hosts[h.name] = HostState(
            h.name, h.capacity, h.used + Resources(vcpus, ram, 0), cpu_ratio=1.0, ram_ratio=1.0
        )
    for h in hosts.values():
        assert h.used.vcpus <= h.limit.vcpus and h.used.ram_mib <= h.limit.ram_mib


@given(st.lists(st.integers(256, 8192), min_size=1, max_size=8, unique=True))
def test_choice_is_deterministic(rams: list[int]) -> None:
    hosts = [host(f"h{i}", ram=r) for i, r in enumerate(rams)]
    assert choose(hosts, req()).host == choose(list(reversed(hosts)), req()).host


def test_aggregates_image_properties_and_traits() -> None:
    hosts = [
        host("ssd", metadata=(("disk", "ssd"),), virt_type="kvm", traits=frozenset({"CUSTOM_GPU"})),
        host("hdd", metadata=(("disk", "hdd"),), virt_type="kvm"),
        host("tcg", metadata=(("disk", "ssd"),), virt_type="qemu"),
    ]
    wants_ssd = (("aggregate_instance_extra_specs:disk", "ssd"),)
    choice = choose(hosts, req(extra_specs=wants_ssd, image_properties=(("img_hv_type", "kvm"),)))
    assert choice.host is not None and choice.host.name == "ssd"
    assert choice.rejected == {
        "hdd": "aggregate metadata disk='hdd', flavor wants 'ssd'",
        "tcg": "image needs hypervisor kvm, host runs qemu",
    }
    either = (("aggregate_instance_extra_specs:disk", "hdd, ssd"),)
    assert choose(hosts[1:2], req(extra_specs=either)).host is not None
    arm = choose(hosts, req(image_properties=(("hw_architecture", "aarch64"),)))
    assert arm.host is None and "image needs architecture aarch64" in arm.reason()
    traits = required_traits((("trait:CUSTOM_GPU", "required"), ("trait:X", "forbidden")), ())
    assert traits == frozenset({"CUSTOM_GPU"})
    gpu = choose(hosts, req(required_traits=traits))
    assert gpu.host is not None and gpu.host.name == "ssd"


def test_aggregates_fold_into_host_settings() -> None:
    settings = {
        "h1": {"metadata": {"ssd": "false", "own": "1"}},
        "h2": {"aggregates": ["fast"]},
        "h3": {"zone": "nova"},
    }
    aggregates = {
        "fast": {"hosts": ["h1"], "metadata": {"ssd": "true", "gpu": "no"}},
        "london": {"hosts": ["h1", "h4"], "availabilityZone": "london"},
    }
    merged = with_aggregates(settings, aggregates)
    # the Host's own metadata wins over its aggregates'
    assert merged["h1"] == {"metadata": {"ssd": "false", "gpu": "no", "own": "1"}, "zone": "london"}
    # a Host naming an aggregate is in it too
    assert merged["h2"]["metadata"] == {"ssd": "true", "gpu": "no"}
    assert merged["h3"] == {"zone": "nova"}
    # an aggregate may list a host that has no Host object yet
    assert merged["h4"] == {"metadata": {}, "zone": "london"}
    assert settings["h1"] == {"metadata": {"ssd": "false", "own": "1"}}  # not changed
