"""Subnets of every size through the real API server, etcd and network reconciler.

Shown: a member's subnet over a special-purpose block (0.0.0.0/0, loopback,
multicast, link-local, 240/4) is refused with Neutron's ``InvalidInput``; no one's
subnet lies inside one; an admin's /0 (through Neutron or the declarative API) is
made, listed, shown and given ports as fast as a /24, its ports outside the
special blocks; a member's /8 is fine.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture
from tests.integration.test_network_reconciler import network_reconciler

#: seconds any one request may take: listing a /0 took minutes and 22 GB before
FAST = 0.5


class Neutron:
    """Timed requests of the Neutron subset for one token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = f"{base}/network/v2.0"
        self.headers = {"X-Auth-Token": token}
        self.slowest = 0.0

    async def __call__(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        t0 = time.perf_counter()
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.base + path, json=body, headers=self.headers) as resp,
        ):
            text = await resp.text()
            self.slowest = max(self.slowest, time.perf_counter() - t0)
            return resp.status, (await resp.json()) if text else {}

    async def network(self, name: str) -> str:
        code, made = await self("POST", "/networks", {"network": {"name": name}})
        assert code == 201, made
        return str(made["network"]["id"])


async def test_members_subnets_stay_out_of_special_blocks(cloud: str) -> None:  # noqa: F811
    demo = Neutron(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    admin = Neutron(cloud, await token_of(cloud, "admin", "admin-secret", "admin"))
    net = await demo.network("mine")
    refused = {
        "0.0.0.0/0": "0.0.0.0/8",
        "127.0.0.0/24": "127.0.0.0/8 (loopback)",
        "224.0.0.0/24": "224.0.0.0/4 (multicast)",
        "169.254.0.0/16": "169.254.0.0/16 (link-local",
        "240.0.0.0/24": "240.0.0.0/4 (reserved",
        "96.0.0.0/3": "127.0.0.0/8 (loopback)",
    }
    for cidr, block in refused.items():
        code, body = await demo("POST", "/subnets", {"subnet": {"network_id": net, "cidr": cidr}})
        assert code == 400, (cidr, body)
        error = body["NeutronError"]
        assert (error["type"], error["detail"]) == ("InvalidInput", ""), error
        assert error["message"].startswith(f"Invalid input for operation: cidr {cidr} overlaps ")
        assert block in error["message"], error
    # no one's subnet lies inside one, an admin's neither
    code, body = await admin(
        "POST", "/subnets", {"subnet": {"network_id": net, "cidr": "127.0.0.0/24"}}
    )
    assert code == 400 and "must not lie inside 127.0.0.0/8" in body["NeutronError"]["message"]
    _, subnets = await demo("GET", "/subnets")
    assert subnets == {"subnets": []}
    # a member's /8 is fine; its pool is shown as one range
    code, made = await demo(
        "POST", "/subnets", {"subnet": {"network_id": net, "cidr": "10.0.0.0/8"}}
    )
    assert code == 201, made
    assert made["subnet"]["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.255.255.254"}]
    assert demo.slowest < FAST and admin.slowest < FAST


async def test_an_admins_slash_0_is_as_fast_as_any(cloud: str, store: Store) -> None:  # noqa: F811
    admin = Neutron(cloud, await token_of(cloud, "admin", "admin-secret", "admin"))
    net = await admin.network("everything")
    code, made = await admin(
        "POST", "/subnets", {"subnet": {"network_id": net, "cidr": "0.0.0.0/0"}}
    )
    assert code == 201, made
    subnet = made["subnet"]
    assert (subnet["cidr"], subnet["gateway_ip"]) == ("0.0.0.0/0", "0.0.0.1")
    assert subnet["allocation_pools"] == [
        {"start": "1.0.0.0", "end": "126.255.255.255"},
        {"start": "128.0.0.0", "end": "169.253.255.255"},
        {"start": "169.255.0.0", "end": "223.255.255.255"},
    ]
    for _ in range(3):
        code, listed = await admin("GET", "/subnets")
        assert code == 200 and [s["id"] for s in listed["subnets"]] == [subnet["id"]]
    code, shown = await admin("GET", f"/subnets/{subnet['id']}")
    assert code == 200 and shown["subnet"] == listed["subnets"][0]
    nova = Nova(cloud, admin.headers["X-Auth-Token"])
    code, nets = await nova("GET", "/os-networks")
    assert code == 200
    assert [(n["cidr"], n["dhcp_start"]) for n in nets["networks"]] == [("0.0.0.0/0", "1.0.0.0")]

    # the declarative API (an admin's, as gitsync) makes one too; inside a block it refuses
    bearer = {"Authorization": "Bearer bootstrap-token"}
    async with aiohttp.ClientSession(base_url=cloud, headers=bearer) as api:
        made_and_refused = (
            ("other", "0.0.0.0/0", 201),
            ("other", "127.0.0.0/24", 422),
            ("other", "10.0.0.0/99", 422),  # not a network: the schema's, not a crash
        )
        for i, (project, cidr, status) in enumerate(made_and_refused):
            obj = {
                "apiVersion": "desired/v1",
                "kind": "Network",
                "metadata": {"name": f"n{i}", "project": project},
                "spec": {"cidr": cidr},
            }
            t0 = time.perf_counter()
            async with api.post("/apis/v1/apply", json=obj) as resp:
                assert resp.status == status, await resp.text()
                assert time.perf_counter() - t0 < FAST

    # ports: the network reconciler gives them addresses outside the special blocks
    async with network_reconciler(store):
        for name in ("a", "b"):
            await store.create(
                {
                    "kind": "Instance",
                    "metadata": {"name": name, "project": "admin"},
                    "spec": {
                        "flavor": "small",
                        "image": "tiny",
                        "networks": [{"network": "everything"}],
                    },
                }
            )

        async def addresses() -> list[str]:
            found = []
            for name in ("a", "b"):
                status = (await store.get(Ref("Instance", "admin", name))).get("status") or {}
                found += [p["address"] for p in status.get("ports") or []]
            return found if len(found) == 2 else []

        got = await eventually(addresses)
    assert len(set(got)) == 2 and all(a.startswith("1.0.0.") for a in got), got
    code, ports = await admin("GET", "/ports")
    assert sorted(p["fixed_ips"][0]["ip_address"] for p in ports["ports"]) == sorted(got)
    assert all(p["fixed_ips"][0]["subnet_id"] == subnet["id"] for p in ports["ports"])
    code, _ = await admin("GET", "/subnets")
    assert admin.slowest < FAST, admin.slowest
