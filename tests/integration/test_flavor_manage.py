"""Flavor management through the Compute API: admins create and delete flavors, set their
extra specs and give projects access to private ones; members may only read. A simulated
host runs the server that keeps a flavor from being deleted."""

from __future__ import annotations

from pathlib import Path

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


async def test_flavors_extra_specs_and_access(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        other = Nova(base, await token_of(base, "other", "other-secret", "other"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        new = {"name": "Big One", "ram": 1024, "vcpus": 2, "disk": 10, "id": "big1"}
        code, body = await demo("POST", "/flavors", {"flavor": new})
        assert code == 403
        code, body = await admin("POST", "/flavors", {"flavor": new})
        assert code == 200, body
        flavor = body["flavor"]
        assert (flavor["id"], flavor["name"], flavor["vcpus"], flavor["ram"]) == (
            "big1",
            "Big One",
            2,
            1024,
        )
        assert (await admin("POST", "/flavors", {"flavor": new}))[0] == 409
        assert (await admin("POST", "/flavors", {"flavor": {**new, "name": "x"}}))[0] == 409
        for bad in ({**new, "name": " lead"}, {**new, "ram": 0}, {**new, "vcpus": "two"}):
            assert (await admin("POST", "/flavors", {"flavor": {**bad, "id": "z"}}))[0] == 400
        assert (await demo("GET", "/flavors/big1"))[1]["flavor"]["name"] == "Big One"

        # extra specs: admins write, readers read
        specs = {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:disk_read_iops_sec": 5}}
        assert (await demo("POST", "/flavors/big1/os-extra_specs", specs))[0] == 403
        code, body = await admin("POST", "/flavors/big1/os-extra_specs", specs)
        assert (code, body["extra_specs"]["quota:disk_read_iops_sec"]) == (200, "5")
        one = {"hw:cpu_policy": "shared"}
        assert await admin("PUT", "/flavors/big1/os-extra_specs/hw:cpu_policy", one) == (200, one)
        mismatch = {"hw:other": "x"}
        assert (await admin("PUT", "/flavors/big1/os-extra_specs/hw:cpu_policy", mismatch))[
            0
        ] == 400
        assert await demo("GET", "/flavors/big1/os-extra_specs/hw:cpu_policy") == (200, one)
        assert (await admin("DELETE", "/flavors/big1/os-extra_specs/hw:cpu_policy"))[0] == 202
        assert (await demo("GET", "/flavors/big1/os-extra_specs/hw:cpu_policy"))[0] == 404
        _, body = await demo("GET", "/flavors/big1/os-extra_specs")
        assert body == {"extra_specs": {"quota:disk_read_iops_sec": "5"}}

        # a private flavor: only admins and the projects given access see and use it
        private = {
            "name": "secret",
            "ram": 256,
            "vcpus": 1,
            "disk": 1,
            "os-flavor-access:is_public": False,
        }
        code, body = await admin("POST", "/flavors", {"flavor": private})
        assert code == 200
        fid = body["flavor"]["id"]
        assert (await demo("GET", f"/flavors/{fid}"))[0] == 404
        _, projects = await admin("GET", "/os-quota-sets/demo")
        demo_id = projects["quota_set"]["id"]
        add = {"addTenantAccess": {"tenant": demo_id}}
        code, body = await admin("POST", f"/flavors/{fid}/action", add)
        assert (code, body) == (200, {"flavor_access": [{"flavor_id": fid, "tenant_id": demo_id}]})
        assert (await admin("POST", f"/flavors/{fid}/action", add))[0] == 409
        assert (
            await admin("POST", f"/flavors/{fid}/action", {"addTenantAccess": {"tenant": "nope"}})
        )[0] == 400
        assert (await admin.at("2.7")("POST", "/flavors/big1/action", add))[0] == 409
        assert (await admin.at("2.6")("POST", "/flavors/big1/action", add))[0] == 200
        assert (await admin("GET", "/flavors/big1/os-flavor-access"))[0] == 404
        assert (await admin("GET", f"/flavors/{fid}/os-flavor-access"))[1]["flavor_access"][0][
            "tenant_id"
        ] == demo_id
        assert (await demo("GET", f"/flavors/{fid}"))[0] == 200
        assert fid in [f["id"] for f in (await demo("GET", "/flavors"))[1]["flavors"]]
        assert fid not in [f["id"] for f in (await other("GET", "/flavors"))[1]["flavors"]]

        # a flavor a server uses stays until the server is gone
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        server = {"name": "vm", "imageRef": image_id, "flavorRef": fid}
        code, body = await demo("POST", "/servers", {"server": server})
        assert code == 202
        sid = body["server"]["id"]
        _, shown = await demo("GET", f"/servers/{sid}")
        assert shown["server"]["flavor"]["id"] == fid
        assert (await admin("DELETE", f"/flavors/{fid}"))[0] == 409
        remove = {"removeTenantAccess": {"tenant": demo_id}}
        assert (await admin("POST", f"/flavors/{fid}/action", remove))[1] == {"flavor_access": []}
        assert (await admin("POST", f"/flavors/{fid}/action", remove))[0] == 404
        assert (await demo("DELETE", f"/servers/{sid}"))[0] == 204

        async def deletable() -> bool:
            return (await admin("DELETE", f"/flavors/{fid}"))[0] == 202

        await eventually(deletable)
        assert (await admin("GET", f"/flavors/{fid}"))[0] == 404
        assert (await demo("DELETE", "/flavors/big1"))[0] == 403
        assert (await admin("DELETE", "/flavors/big1"))[0] == 202
