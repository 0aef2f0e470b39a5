"""Server update, lock and unlock, and rebuild through the Compute API on a simulated host."""

from __future__ import annotations

from pathlib import Path

from apiserver.compute.server_views import BASIC
from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova, object_name_of
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


async def test_update_lock_and_rebuild(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        request = {"server": {"name": "vm", "imageRef": image_id, "flavorRef": "small"}}
        code, created = await demo("POST", "/servers", request)
        assert code == 202
        sid = created["server"]["id"]
        ref = Ref("Instance", "demo", await object_name_of(store, created))

        async def status_is(want: str) -> bool:
            return await demo.status_of(sid) == want

        await eventually(lambda: status_is("ACTIVE"))

        # update: a new name, answered with the basic view
        code, body = await demo("PUT", f"/servers/{sid}", {"server": {"name": "Renamed VM"}})
        assert code == 200 and set(body["server"]) == set(BASIC)
        assert body["server"]["name"] == "Renamed VM"
        assert (await demo("GET", f"/servers/{sid}"))[1]["server"]["name"] == "Renamed VM"
        code, _ = await demo("PUT", f"/servers/{sid}", {"server": {"flavor": "x"}})
        assert code == 400

        # lock: the project's members can no longer change it, admins can
        assert (await demo("POST", f"/servers/{sid}/action", {"lock": None}))[0] == 202
        assert (await store.get(ref))["spec"]["locked"] is True
        locked = (
            409,
            {"conflictingRequest": {"code": 409, "message": f"Instance {sid} is locked"}},
        )
        assert await demo("POST", f"/servers/{sid}/action", {"os-stop": None}) == locked
        assert await demo("DELETE", f"/servers/{sid}") == locked
        assert await demo("PUT", f"/servers/{sid}/metadata/k", {"meta": {"k": "v"}}) == locked
        assert (await admin("POST", f"/servers/{sid}/action", {"os-stop": None}))[0] == 202
        await eventually(lambda: status_is("SHUTOFF"))
        assert (await demo("POST", f"/servers/{sid}/action", {"unlock": None}))[0] == 202
        # an admin's lock: its owner may not lift it (Nova's unlock_override is admins')
        assert (await admin("POST", f"/servers/{sid}/action", {"lock": {}}))[0] == 202
        code, body = await demo("POST", f"/servers/{sid}/action", {"unlock": {}})
        assert code == 403 and "unlock_override" in body["forbidden"]["message"]
        assert (await admin("POST", f"/servers/{sid}/action", {"unlock": {}}))[0] == 202
        assert (await demo("POST", f"/servers/{sid}/action", {"os-start": None}))[0] == 202
        await eventually(lambda: status_is("ACTIVE"))

        # rebuild: a fresh disk, a new name and metadata; the basic view and a password
        rebuild = {"rebuild": {"imageRef": image_id, "name": "Rebuilt", "metadata": {"a": "b"}}}
        code, body = await demo("POST", f"/servers/{sid}/action", rebuild)
        assert code == 202 and set(body["server"]) == {*BASIC, "adminPass"}
        assert (body["server"]["name"], body["server"]["metadata"]) == ("Rebuilt", {"a": "b"})

        async def rebuilt() -> bool:
            obj = await store.get(ref)
            return obj["status"].get("rebuildGeneration") == 1 and await status_is("ACTIVE")

        await eventually(rebuilt)
        code, body = await demo("POST", f"/servers/{sid}/action", {"rebuild": {"imageRef": "nope"}})
        assert code == 400
        # key pairs with names that are no object names, as Nova allows them
        code, body = await demo("POST", "/os-keypairs", {"keypair": {"name": "My Key@laptop"}})
        assert code == 200 and body["keypair"]["name"] == "My Key@laptop"
        assert (await demo("GET", "/os-keypairs/My%20Key@laptop"))[1]["keypair"]["name"] == (
            "My Key@laptop"
        )
        code, body = await demo("POST", "/os-keypairs", {"keypair": {"name": "bad/name"}})
        assert code == 400 and "unsafe" in body["badRequest"]["message"]
        keyed = {"name": "keyed", "imageRef": image_id, "flavorRef": "small"}
        code, body = await demo(
            "POST", "/servers", {"server": {**keyed, "key_name": "My Key@laptop"}}
        )
        assert code == 202
        shown = (await demo("GET", f"/servers/{body['server']['id']}"))[1]["server"]
        assert shown["key_name"] == "My Key@laptop"
        code, body = await demo("POST", "/servers", {"server": {**keyed, "key_name": "nope"}})
        assert (code, body["badRequest"]["message"]) == (400, "Invalid key_name provided.")

        # console output: a simulated host has no console log, and answers so
        code, body = await demo(
            "POST", f"/servers/{sid}/action", {"os-getConsoleOutput": {"length": 5}}
        )
        assert (code, body) == (200, {"output": ""})
        code, _ = await demo(
            "POST", f"/servers/{sid}/action", {"os-getConsoleOutput": {"length": "x"}}
        )
        assert code == 400
        _, events = await demo("GET", f"/servers/{sid}/os-instance-actions")
        assert {"rebuild", "lock", "unlock"} <= {a["action"] for a in events["instanceActions"]}
