"""os-migrations on a simulated host: a resize is a migration whose status follows it to
confirmed or reverted, in SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


async def test_resizes_are_migrations(store: Store, sql_url: str, tmp_path: Path) -> None:
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        await store.create(
            {
                "kind": "Flavor",
                "metadata": {"name": "large"},
                "spec": {"vcpus": 2, "ramMiB": 512, "diskGiB": 2},
            }
        )
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        server = {"name": "vm", "imageRef": image_id, "flavorRef": "small"}
        code, body = await demo("POST", "/servers", {"server": server})
        assert code == 202
        sid = body["server"]["id"]

        async def status_is(want: str) -> bool:
            return await demo.status_of(sid) == want

        await eventually(lambda: status_is("ACTIVE"))
        assert await admin("GET", "/os-migrations") == (200, {"migrations": []})
        assert (await demo("GET", "/os-migrations"))[0] == 403

        async def migrations(query: str = "") -> list[dict]:
            code, body = await admin.at("2.23")("GET", f"/os-migrations{query}")
            assert code == 200, body
            return list(body["migrations"])

        async def latest_is(status: str) -> bool:
            return [m["status"] for m in await migrations()][:1] == [status]

        for settle, final in (("confirmResize", "confirmed"), ("revertResize", "reverted")):
            flavor = "large" if settle == "confirmResize" else "small"
            resize = {"resize": {"flavorRef": flavor}}
            assert (await demo("POST", f"/servers/{sid}/action", resize))[0] == 202
            await eventually(lambda: status_is("VERIFY_RESIZE"))
            await eventually(lambda: latest_is("finished"))
            assert (await demo("POST", f"/servers/{sid}/action", {settle: None}))[0] in (202, 204)
            await eventually(lambda final=final: latest_is(final))  # type: ignore[misc]
            await eventually(lambda: status_is("ACTIVE"))
        first, second = reversed(await migrations())
        assert (first["status"], second["status"]) == ("confirmed", "reverted")
        assert first["old_instance_type_id"] == second["new_instance_type_id"] != 0
        assert first["new_instance_type_id"] == second["old_instance_type_id"] != 0
        assert first["source_compute"] == first["dest_compute"] == "sim-1"
        assert first["dest_host"] == "127.0.0.1" and first["migration_type"] == "resize"
        assert first["instance_uuid"] == sid and first["id"] != second["id"]
        _, body = await admin("GET", "/os-migrations")
        assert "migration_type" not in body["migrations"][0]
        assert [m["id"] for m in await migrations("?status=reverted")] == [second["id"]]
        assert [m["id"] for m in await migrations("?host=sim-1")] == [second["id"], first["id"]]
        assert await migrations("?instance_uuid=nope") == []
        # a server's in-progress live migrations: none here (2.23)
        assert (await admin.at("2.22")("GET", f"/servers/{sid}/migrations"))[0] == 404
        assert await admin.at("2.23")("GET", f"/servers/{sid}/migrations") == (
            200,
            {"migrations": []},
        )
        assert (await admin.at("2.23")("GET", f"/servers/{sid}/migrations/1"))[0] == 404
        assert (await demo.at("2.23")("GET", f"/servers/{sid}/migrations"))[0] == 403
