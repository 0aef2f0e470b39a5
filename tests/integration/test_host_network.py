"""hostd's network driver in a namespace of the test's own, with veth "guests".

Each guest is a namespace whose ``eth0`` has a port's MAC and whose peer, in
the host namespace, has the name the port's tap would have: the host's real
bridge, dnsmasq, iptables chains and metadata proxy treat it as the port.
Shown: DHCP hands each port its address (and nothing to an unknown MAC);
ping between guests passes only while a security-group rule allows ICMP;
a guest using another address is dropped; the metadata proxy passes a
guest's request on with its instance id, signed; a flushed chain, a removed
jump, a killed dnsmasq and a deleted bridge are restored and reported;
removing everything leaves no bridge, chain or dnsmasq behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fixtures.guest_image import UDHCPC_SCRIPT
from fixtures.netns import NetNamespace, VethGuest, flush_chains
from fixtures.ports import free_port
from hostd.net import firewall, links
from hostd.net.driver import HostNetwork
from hostd.net.iptables import owned_chains
from hostd.net.netns import Namespace
from state import instance_signature
from tests.conftest import serving

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")

SECRET = "test-secret"
NET_UID = "5d0e8f7a-0000-4000-8000-000000000001"
BRIDGE = "dqbr-test" + uuid.uuid4().hex[:6]


def assignment(uid: str, address: str, mac: str, ingress: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid,
        "name": f"vm-{uid[:4]}",
        "project": "demo",
        "network": {
            "ports": [
                {
                    "index": 0,
                    "network": "default",
                    "networkUid": NET_UID,
                    "bridge": BRIDGE,
                    "cidr": "10.77.0.0/24",
                    "gateway": "10.77.0.1",
                    "dnsServers": [],
                    "address": address,
                    "mac": mac,
                }
            ],
            "securityGroups": ["default"],
            "ingress": ingress,
        },
    }


@pytest.fixture
def host() -> Iterator[NetNamespace]:
    with NetNamespace("dh") as ns:
        yield ns


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "udhcpc.script"
    path.write_text(UDHCPC_SCRIPT)
    path.chmod(0o755)
    return path


@contextlib.asynccontextmanager
async def upstream() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in metadata service that answers with the instance id it was told."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text=request.headers.get("X-Instance-ID", ""))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with serving(app) as base:
        yield base, seen


async def test_dhcp_security_groups_metadata_and_drift(
    host: NetNamespace, script: Path, tmp_path: Path
) -> None:
    uids = [str(uuid.uuid4()) for _ in range(2)]
    macs = ["fa:16:3e:00:00:11", "fa:16:3e:00:00:22"]
    addresses = ["10.77.0.11", "10.77.0.22"]
    icmp = [{"protocol": "icmp", "remoteCidr": "0.0.0.0/0"}]
    wanted = [assignment(u, a, m, []) for u, a, m in zip(uids, addresses, macs, strict=True)]
    async with upstream() as (base, seen):
        network = HostNetwork(
            Namespace(host.path),
            free_port(),
            metadata_url=base,
            secret=SECRET,
        )
        with contextlib.ExitStack() as stack:
            guests = [
                stack.enter_context(VethGuest(host, firewall.tap_name(u, 0), m))
                for u, m in zip(uids, macs, strict=True)
            ]
            stranger = stack.enter_context(VethGuest(host, "dqstranger-0", "fa:16:3e:00:00:99"))
            try:
                assert await network.sync(lambda: wanted) == []
                for g in (*guests, stranger):
                    g.plug(BRIDGE)
                assert "10.77.0.1/24" in host.ip("-br", "addr", "show", BRIDGE)
                got = await asyncio.gather(*(asyncio.to_thread(g.dhcp, script) for g in guests))
                assert got == addresses
                assert await asyncio.to_thread(stranger.dhcp, script) is None

                # ingress is denied by default; an ICMP rule of the second's group lets it in
                assert not guests[0].ping(addresses[1])
                wanted[1] = assignment(uids[1], addresses[1], macs[1], icmp)
                await network.sync(lambda: wanted)
                assert guests[0].ping(addresses[1])
                assert not guests[1].ping(addresses[0])  # the first still takes none
                wanted[1] = assignment(uids[1], addresses[1], macs[1], [])
                await network.sync(lambda: wanted)
                assert not guests[0].ping(addresses[1])

                # the metadata proxy: 169.254.169.254 reaches it, the id is the caller's, signed
                asked = await asyncio.to_thread(  # the proxy serves from this loop meanwhile
                    guests[0].run,
                    "busybox",
                    "wget",
                    "-q",
                    "-O",
                    "-",
                    "http://169.254.169.254/latest/meta-data/",
                )
                assert asked.stdout == uids[0], asked.stderr
                headers = seen[-1]
                assert headers["X-Instance-ID"] == uids[0]
                assert instance_signature.valid(SECRET, uids[0], headers["X-Instance-ID-Signature"])

                # a guest that takes another address is dropped (anti-spoofing)
                wanted[1] = assignment(uids[1], addresses[1], macs[1], icmp)
                await network.sync(lambda: wanted)
                assert guests[0].ping(addresses[1])
                guests[0].ip("addr", "flush", "dev", "eth0")
                guests[0].ip("addr", "add", "10.77.0.99/24", "dev", "eth0")
                assert not guests[0].ping(addresses[1])
                guests[0].ip("addr", "flush", "dev", "eth0")
                guests[0].ip("addr", "add", f"{addresses[0]}/24", "dev", "eth0")
                assert guests[0].ping(addresses[1])

                # drift: each change behind hostd's back is repaired and reported
                network.ns.call(flush_chains, f"dsd-i-{firewall.tap_name(uids[1], 0)}", "FORWARD")
                assert guests[1].ping(addresses[0])  # the flushed chain lets all in now
                dnsmasq = int((network.dhcp.dir / f"{BRIDGE}.pid").read_text())
                os.kill(dnsmasq, 9)
                repaired = await network.sync(lambda: wanted)
                assert any("dsd-i-" in r and "changed" in r for r in repaired), repaired
                assert any("jump from filter/FORWARD" in r for r in repaired), repaired
                assert any("dnsmasq" in r and "not running" in r for r in repaired), repaired
                assert not guests[1].ping(addresses[0])
                assert guests[0].ping(addresses[1])
                host.ip("link", "del", BRIDGE)
                repaired = await network.sync(lambda: wanted)
                assert any(f"bridge {BRIDGE} created" in r for r in repaired), repaired
                for g in guests:
                    g.plug(BRIDGE)  # libvirt would plug its taps again
                assert guests[0].ping(addresses[1])
                assert await network.sync(lambda: wanted) == []
                dnsmasq = int((network.dhcp.dir / f"{BRIDGE}.pid").read_text())
            finally:
                await network.teardown()
                await network.close()
        assert BRIDGE not in host.links()
        assert Namespace(host.path).call(owned_chains) == {}
        assert not list(network.dhcp.dir.glob("*.pid"))
        with pytest.raises(ProcessLookupError):
            os.kill(dnsmasq, 0)


def _kernel_has_vlans(host: NetNamespace) -> bool:
    probe = subprocess.run(
        [
            "ip",
            "-n",
            host.name,
            "link",
            "add",
            "link",
            "uplink0",
            "name",
            "probe0",
            "type",
            "vlan",
            "id",
            "7",
        ],
        capture_output=True,
    )
    if probe.returncode == 0:
        host.ip("link", "del", "probe0")
    return probe.returncode == 0


async def test_a_vlan_joins_the_bridge_to_a_host_interface(host: NetNamespace) -> None:
    host.ip("link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1")
    if not _kernel_has_vlans(host):
        pytest.skip("this kernel has no 802.1Q VLANs (ip link add ... type vlan: unknown type)")
    uid = str(uuid.uuid4())
    a = assignment(uid, "10.77.0.11", "fa:16:3e:00:00:11", [])
    a["network"]["ports"][0]["vlan"] = {"id": 42, "interface": "uplink0"}
    network = HostNetwork(Namespace(host.path), free_port())
    vlan = links.vlan_name(links.Bridge(BRIDGE, NET_UID, ()))
    try:
        await network.sync(lambda: [a])
        shown = host.ip("-d", "link", "show", vlan)
        assert "vlan protocol 802.1Q id 42" in shown and f"master {BRIDGE}" in shown
        assert "uplink0" in host.ip("link", "show", vlan)
        host.ip("link", "del", vlan)
        repaired = await network.sync(lambda: [a])
        assert any("VLAN 42 on uplink0" in r for r in repaired), repaired
        await network.sync(lambda: [])
        assert vlan not in host.links() and "uplink0" in host.links()
    finally:
        await network.teardown()
        await network.close()
