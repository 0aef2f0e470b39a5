"""os-aggregates on a simulated host: the views and verbs, and the scheduler placing by an
aggregate's metadata and availability zone."""

from __future__ import annotations

from pathlib import Path

from state.envelope import Ref, condition
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova, object_name_of
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


async def test_aggregates(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        for name, ssd in (("ssd", "true"), ("spinning", "false")):
            await store.create(
                {
                    "kind": "Flavor",
                    "metadata": {"name": name},
                    "spec": {
                        "vcpus": 1,
                        "ramMiB": 128,
                        "diskGiB": 1,
                        "extraSpecs": {"aggregate_instance_extra_specs:ssd": ssd},
                    },
                }
            )
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        code, _ = await demo("GET", "/os-aggregates")
        assert code == 403

        code, body = await admin(
            "POST",
            "/os-aggregates",
            {"aggregate": {"name": "Fast Hosts", "availability_zone": "london"}},
        )
        assert code == 200, body
        agg = body["aggregate"]
        assert set(agg) == {
            "availability_zone",
            "created_at",
            "deleted",
            "deleted_at",
            "id",
            "name",
            "updated_at",
        }
        assert (agg["name"], agg["availability_zone"], agg["updated_at"]) == (
            "Fast Hosts",
            "london",
            None,
        )
        path = f"/os-aggregates/{agg['id']}"
        code, body = await admin("POST", "/os-aggregates", {"aggregate": {"name": "Fast Hosts"}})
        assert (code, body["conflictingRequest"]["message"]) == (
            409,
            "Aggregate Fast Hosts already exists.",
        )

        code, body = await admin("POST", f"{path}/action", {"add_host": {"host": "sim-1"}})
        assert code == 200 and body["aggregate"]["hosts"] == ["sim-1"]
        code, body = await admin("POST", f"{path}/action", {"add_host": {"host": "sim-1"}})
        assert (code, body["conflictingRequest"]["message"]) == (
            409,
            f"Aggregate {agg['id']} already has host sim-1.",
        )
        code, body = await admin("POST", f"{path}/action", {"add_host": {"host": "nope"}})
        assert (code, body["itemNotFound"]["message"]) == (
            404,
            "Compute host nope could not be found.",
        )
        code, body = await admin(
            "POST", f"{path}/action", {"set_metadata": {"metadata": {"ssd": "true"}}}
        )
        assert code == 200
        assert body["aggregate"]["metadata"] == {"ssd": "true", "availability_zone": "london"}
        code, body = await admin("GET", "/os-aggregates")
        assert [a["name"] for a in body["aggregates"]] == ["Fast Hosts"]

        # its zone is the host's zone now
        async def in_london() -> bool:
            _, body = await demo("GET", "/os-availability-zone")
            return [z["zoneName"] for z in body["availabilityZoneInfo"]] == ["london"]

        await eventually(in_london)

        # the scheduler matches flavors' extra specs against the aggregate's metadata
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]

        async def boot(name: str, flavor: str, zone: str | None = None) -> str:
            server = {"name": name, "imageRef": image_id, "flavorRef": flavor}
            if zone:
                server["availability_zone"] = zone
            code, body = await demo("POST", "/servers", {"server": server})
            assert code == 202, body
            return str(body["server"]["id"])

        fast = await boot("fast", "ssd", "london")
        slow = await boot("slow", "spinning")

        async def fast_active() -> bool:
            return await demo.status_of(fast) == "ACTIVE"

        await eventually(fast_active)
        slow_ref = Ref("Instance", "demo", await object_name_of(store, {"server": {"id": slow}}))

        async def slow_refused() -> bool:
            scheduled = condition(await store.get(slow_ref), "Scheduled")
            return scheduled is not None and scheduled["status"] == "False"

        await eventually(slow_refused)

        # rename (the object stays), and delete once empty
        code, body = await admin("PUT", path, {"aggregate": {"name": "Faster"}})
        assert code == 200 and (body["aggregate"]["name"], body["aggregate"]["id"]) == (
            "Faster",
            agg["id"],
        )
        assert body["aggregate"]["updated_at"] is not None
        code, body = await admin("DELETE", path)
        assert code == 400 and "not empty" in body["badRequest"]["message"]
        code, body = await admin("POST", f"{path}/action", {"remove_host": {"host": "sim-1"}})
        assert code == 200 and body["aggregate"]["hosts"] == []
        code, body = await admin("POST", f"{path}/action", {"remove_host": {"host": "sim-1"}})
        assert (code, body["itemNotFound"]["message"]) == (
            404,
            f"Aggregate {agg['id']} has no host sim-1.",
        )
        code, _ = await admin("DELETE", path)
        assert code == 200
        code, body = await admin("GET", "/os-aggregates")
        assert body["aggregates"] == []
        code, _ = await admin("GET", path)
        assert code == 404
        code, _ = await admin("POST", "/os-aggregates", {"aggregate": {"name": " x"}})
        assert code == 400
