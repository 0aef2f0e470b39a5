"""End to end: real guests on desired's networks, in libvirtd's namespace ``desired-guests``.

``desired up`` boots its demo guest on the demo project's network; a second
guest joins it with user data that pings the first every second. Shown, from
the guests' own console logs: each takes its DHCP lease and reads its own
metadata (uuid, instance-id, address) and nobody else's; the pings pass only
while a rule of the default security group allows ICMP, and an ingress chain
flushed behind hostd's back is put back and reported on the Host. A client in a
namespace of its own, on the floating IPs' network, reaches the first guest
through its floating IP, and no longer once it is disassociated. Deleting
everything leaves no bridge, tap, chain or dnsmasq behind.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.guest_image import ADDRESS_MARKER, METADATA_MARKER
from fixtures.libvirtd import guests_namespace
from fixtures.netns import NetNamespace, flush_chains
from hostd.net import firewall
from hostd.net.dhcp import RUN_DIR
from hostd.net.iptables import owned_chains
from hostd.net.netns import Namespace
from state import ec2_ids, ipam
from tests.e2e.test_real_guest import console, libvirtd, real_up, settled, storage  # noqa: F401
from tests.e2e.up_process import Up, ctl

PING_SCRIPT = """#!/bin/sh
n=0
while :; do
  n=$((n+1))
  if ping -c 1 -W 1 {target} >/dev/null 2>&1; then r=ok; else r=fail; fi
  echo "desired-guest: ping $n $r"
  sleep 1
done
"""


def apply(up: Up, tmp: Path, *docs: dict[str, Any]) -> None:
    path = tmp / "objects.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    res = ctl(up, "apply", "-f", str(path))
    assert res.returncode == 0, res.stderr


def instance(up: Up, name: str) -> dict[str, Any] | None:
    res = ctl(up, "get", "instance", name, "-p", "demo", "-o", "json")
    return json.loads(res.stdout) if res.returncode == 0 else None


def wait(what: str, probe: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"waited {timeout}s for {what}"
        time.sleep(0.3)


def console_of(vm: dict[str, Any]) -> str:
    """The guest's console log so far ("" before hostd reports one)."""
    return console(vm) if (vm.get("status") or {}).get("consoleLog") else ""


def said(vm: dict[str, Any], marker: str) -> list[str]:
    """What the guest printed after ``marker`` on its console, in order."""
    return [
        line.split(marker, 1)[1].strip() for line in console_of(vm).splitlines() if marker in line
    ]


def metadata(vm: dict[str, Any]) -> dict[str, str]:
    found = {}
    for rest in said(vm, METADATA_MARKER):
        key, _, value = rest.partition(" ")
        found[key] = value
    return found


def pings(vm: dict[str, Any]) -> list[tuple[int, str]]:
    return [
        (int(m.group(1)), m.group(2))
        for line in console_of(vm).splitlines()
        if (m := re.search(r"desired-guest: ping (\d+) (ok|fail)", line))
    ]


def wait_refused(what: str, vm: Callable[[], dict[str, Any] | None], after: int) -> None:
    """Waits until the guest's last three pings, of those more than ``after`` past its
    latest now, failed."""
    since = pings(vm() or {})[-1][0]
    wait(
        what,
        lambda: [r for n, r in pings(vm() or {}) if n > since + after][-3:] == ["fail"] * 3,
    )


def ping_from(client: NetNamespace, address: str) -> bool:
    return client.run("busybox", "ping", "-c", "1", "-W", "1", address).returncode == 0


def group(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "SecurityGroup",
        "metadata": {"name": "default", "project": "demo"},
        "spec": {"rules": rules},
    }


ICMP_IN = [{"direction": "ingress", "protocol": "icmp"}]


@pytest.mark.usefixtures("libvirtd")
def test_real_guests_dhcp_metadata_security_groups_and_floating_ips(
    tmp_path: Path,
    storage: Path,  # noqa: F811
) -> None:
    guests_ns = Namespace(str(guests_namespace()))
    # a short resync: drift made behind hostd's back is repaired within seconds
    with real_up(tmp_path / "desired", storage, DESIRED_HOSTD_RESYNC="3") as up:
        first = wait(
            "tiny-1 on its network",
            lambda: (
                (v := instance(up, "tiny-1"))
                and said(v, ADDRESS_MARKER)
                and metadata(v).get("uuid")
                and v
            ),
        )
        uid1 = first["metadata"]["uid"]
        address1 = first["status"]["ports"][0]["address"]
        assert said(first, ADDRESS_MARKER) == [address1]
        md1 = metadata(first)
        assert md1["uuid"] == uid1
        assert md1["instance-id"] == ec2_ids.of_instance(first)
        assert md1["local-ipv4"] == address1

        # a second guest pings the first; the default group allows no ingress yet
        script = PING_SCRIPT.format(target=address1).encode()
        apply(
            up,
            tmp_path,
            group([]),
            {
                "kind": "Instance",
                "metadata": {"name": "tiny-2", "project": "demo"},
                "spec": {
                    "flavor": "m1.tiny",
                    "image": "tiny",
                    "networks": [{"network": "default"}],
                    "userData": base64.b64encode(script).decode(),
                },
            },
        )
        second = wait(
            "tiny-2's pings", lambda: (v := instance(up, "tiny-2")) and len(pings(v)) >= 3 and v
        )
        uid2 = second["metadata"]["uid"]
        md2 = metadata(second)
        assert md2["uuid"] == uid2 and md2["uuid"] != uid1
        assert md2["local-ipv4"] == second["status"]["ports"][0]["address"] != address1
        assert md2["user-data"].startswith("#!/bin/sh")
        assert {r for _, r in pings(second)} == {"fail"}

        apply(up, tmp_path, group(ICMP_IN))
        wait("pings that pass", lambda: pings(instance(up, "tiny-2") or {})[-1][1] == "ok")
        apply(up, tmp_path, group([]))
        wait_refused("pings refused again", lambda: instance(up, "tiny-2"), 2)

        # drift: tiny-1's ingress chain flushed behind hostd's back lets pings in, until
        # the next resync puts it back and says so on the Host
        chain = f"dsd-i-{firewall.tap_name(uid1, 0)}"
        guests_ns.call(flush_chains, chain)
        host = second["status"]["host"]
        wait(
            "the drift reported",
            lambda: "NetworkDriftRepaired" in ctl(up, "describe", "host", host).stdout,
            timeout=30,
        )
        assert f"chain filter/{chain} was changed" in ctl(up, "describe", "host", host).stdout
        wait_refused("pings refused after the repair", lambda: instance(up, "tiny-2"), 1)

        # a floating IP of the first guest, reached from a client namespace on its network
        apply(
            up,
            tmp_path,
            group(ICMP_IN),
            {
                "kind": "Network",
                "metadata": {"name": "public", "project": "demo"},
                "spec": {"cidr": "203.0.113.0/24", "external": True},
            },
            {
                "kind": "FloatingIP",
                "metadata": {"name": "fip1", "project": "demo"},
                "spec": {"pool": "public", "instance": "tiny-1"},
            },
        )
        fip = wait(
            "the floating IP's address", lambda: _status(up, "floatingip", "fip1").get("address")
        )
        public = _object(up, "network", "public")
        bridge = ipam.bridge_name(public)
        with NetNamespace("dc") as client:
            peer = f"cl{client.name[-8:]}"
            subprocess.run(
                [
                    "ip",
                    "link",
                    "add",
                    "eth0",
                    "netns",
                    client.name,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    peer,
                    "netns",
                    "desired-guests",
                ],
                check=True,
            )
            client.ip("addr", "add", "203.0.113.50/24", "dev", "eth0")
            client.ip("link", "set", "eth0", "up")
            wait(
                "the floating IP's bridge",
                lambda: bridge in NetNamespace.links_of("desired-guests"),
            )
            subprocess.run(
                ["ip", "-n", "desired-guests", "link", "set", peer, "master", bridge, "up"],
                check=True,
            )
            wait("ping through the floating IP", lambda: ping_from(client, fip), timeout=30)
            assert not ping_from(client, address1)  # the fixed address is not reachable from there
            apply(
                up,
                tmp_path,
                {
                    "kind": "FloatingIP",
                    "metadata": {"name": "fip1", "project": "demo"},
                    "spec": {"pool": "public"},
                },
            )
            wait(
                "the floating IP gone from the guest",
                lambda: not ping_from(client, fip),
                timeout=30,
            )

        # delete everything: nothing of desired's is left in the guests' namespace
        for kind, name in (("instance", "tiny-1"), ("instance", "tiny-2"), ("floatingip", "fip1")):
            assert ctl(up, "delete", kind, name, "-p", "demo").returncode == 0
        wait(
            "the instances gone",
            lambda: instance(up, "tiny-1") is None and instance(up, "tiny-2") is None,
        )
        for name in ("public", "default"):
            assert ctl(up, "delete", "network", name, "-p", "demo").returncode == 0
        wait(
            "no bridge or tap",
            lambda: not [n for n in NetNamespace.links_of("desired-guests") if n.startswith("dq")],
            timeout=60,
        )
        wait("no chain", lambda: guests_ns.call(owned_chains) == {}, timeout=30)
        assert not list((RUN_DIR / guests_ns.key).glob("*.pid"))
    guests_ns.close()


def _object(up: Up, kind: str, name: str) -> dict[str, Any]:
    res = ctl(up, "get", kind, name, "-p", "demo", "-o", "json")
    assert res.returncode == 0, res.stderr
    obj: dict[str, Any] = json.loads(res.stdout)
    return obj


def _status(up: Up, kind: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = _object(up, kind, name).get("status") or {}
    return status
