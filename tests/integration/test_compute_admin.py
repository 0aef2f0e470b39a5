"""os-hypervisors and os-services on a simulated host, on SQLite and PostgreSQL: the views,
and a disabled host that the scheduler skips until it is enabled again."""

from __future__ import annotations

import json
from pathlib import Path

import libvirt

from state.envelope import Ref, condition
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova, object_name_of
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


async def test_hypervisors_and_services(store: Store, sql_url: str, tmp_path: Path) -> None:
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        code, body = await demo("GET", "/os-hypervisors")
        assert (code, body["forbidden"]["message"]) == (
            403,
            "Policy doesn't allow os_compute_api:os-hypervisors:list to be performed.",
        )
        code, _ = await demo("GET", "/os-services")
        assert code == 403

        async def listed() -> bool:
            _, body = await admin("GET", "/os-hypervisors")
            return [h["hypervisor_hostname"] for h in body["hypervisors"]] == ["sim-1"]

        await eventually(listed)
        _, body = await admin("GET", "/os-hypervisors/detail")
        (hyp,) = body["hypervisors"]
        assert (hyp["state"], hyp["status"], hyp["service"]["disabled_reason"]) == (
            "up",
            "enabled",
            None,
        )
        assert (hyp["vcpus"], hyp["memory_mb"], hyp["local_gb"]) == (8, 8192, 100)
        assert (hyp["vcpus_used"], hyp["memory_mb_used"], hyp["running_vms"]) == (0, 512, 0)
        assert hyp["hypervisor_type"] == "TEST"
        assert hyp["hypervisor_version"] == libvirt.open("test:///default").getVersion()
        assert json.loads(hyp["cpu_info"])["topology"]["cores"] == 8
        assert hyp["host_ip"] == "127.0.0.1"

        # a server on it shows in the usage and among its servers
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        request = {"server": {"name": "vm1", "imageRef": image_id, "flavorRef": "small"}}
        code, created = await demo("POST", "/servers", request)
        assert code == 202
        sid = created["server"]["id"]

        async def used() -> bool:
            _, body = await admin("GET", f"/os-hypervisors/{hyp['id']}")
            h = body["hypervisor"]
            return (h["vcpus_used"], h["memory_mb_used"], h["running_vms"]) == (1, 768, 1)

        await eventually(used)
        _, body = await admin("GET", "/os-hypervisors/statistics")
        assert body["hypervisor_statistics"]["count"] == 1
        assert body["hypervisor_statistics"]["free_ram_mb"] == 8192 - 768
        _, body = await admin("GET", "/os-hypervisors/sim/servers")
        assert body["hypervisors"][0]["servers"] == [{"name": "vm1", "uuid": sid}]
        _, body = await admin("GET", "/os-hypervisors/sim/search")
        assert [h["id"] for h in body["hypervisors"]] == [hyp["id"]]
        code, body = await admin("GET", "/os-hypervisors/nope/search")
        assert (code, body["itemNotFound"]["message"]) == (
            404,
            "No hypervisor matching 'nope' could be found.",
        )
        code, _ = await admin("GET", "/os-hypervisors/999999")
        assert code == 404

        # services: the host's nova-compute, disabled with a reason, and enabled again
        _, body = await admin("GET", "/os-services")
        (svc,) = body["services"]
        assert {k: svc[k] for k in ("id", "binary", "host", "state", "status", "zone")} == {
            "id": hyp["id"],
            "binary": "nova-compute",
            "host": "sim-1",
            "state": "up",
            "status": "enabled",
            "zone": "nova",
        }
        change = {"host": "sim-1", "binary": "nova-compute", "disabled_reason": "maintenance"}
        code, body = await admin("PUT", "/os-services/disable-log-reason", change)
        assert (code, body) == (
            200,
            {"service": {**change, "status": "disabled"}},
        )
        _, body = await admin("GET", "/os-services?binary=nova-compute&host=sim-1")
        assert [(s["status"], s["disabled_reason"]) for s in body["services"]] == [
            ("disabled", "maintenance")
        ]
        _, body = await admin("GET", f"/os-hypervisors/{hyp['id']}")
        assert body["hypervisor"]["status"] == "disabled"

        # the scheduler places nothing on a disabled host
        request["server"]["name"] = "vm2"
        code, created = await demo("POST", "/servers", request)
        assert code == 202

        vm2 = Ref("Instance", "demo", await object_name_of(store, created))

        async def unschedulable() -> bool:
            scheduled = condition(await store.get(vm2), "Scheduled")
            return scheduled is not None and scheduled["status"] == "False"

        await eventually(unschedulable)
        assert not (await store.get(vm2))["status"].get("host")
        code, body = await admin(
            "PUT", "/os-services/enable", {"host": "sim-1", "binary": "nova-compute"}
        )
        assert (code, body["service"]["status"]) == (200, "enabled")

        async def active() -> bool:
            return await demo.status_of(created["server"]["id"]) == "ACTIVE"

        await eventually(active)

        # bad requests
        code, body = await admin(
            "PUT", "/os-services/disable", {"host": "nope", "binary": "nova-compute"}
        )
        assert (code, body["itemNotFound"]["message"]) == (
            404,
            "Could not find binary nova-compute on host nope.",
        )
        code, _ = await admin(
            "PUT", "/os-services/disable", {"host": "sim-1", "binary": "nova-api"}
        )
        assert code == 404
        frobnicate = {"host": "sim-1", "binary": "nova-compute"}
        code, body = await admin("PUT", "/os-services/frobnicate", frobnicate)
        assert (code, body["itemNotFound"]["message"]) == (404, "Unknown action")
        code, _ = await admin("PUT", "/os-services/disable", {"binary": "nova-compute"})
        assert code == 400
        code, _ = await demo(
            "PUT", "/os-services/disable", {"host": "sim-1", "binary": "nova-compute"}
        )
        assert code == 403
        _, body = await admin("GET", "/os-services")
        assert body["services"][0]["status"] == "enabled"
