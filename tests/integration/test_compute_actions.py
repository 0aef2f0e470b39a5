"""os-instance-actions read from the conductor's SQL, on SQLite and PostgreSQL, read-your-writes."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


async def test_instance_actions_from_sql(store: Store, sql_url: str, tmp_path: Path) -> None:
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        nova = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        request = {"server": {"name": "vm1", "imageRef": image_id, "flavorRef": "small"}}
        code, body = await nova("POST", "/servers", request)
        assert code == 202
        sid = body["server"]["id"]

        async def active() -> bool:
            return await nova.status_of(sid) == "ACTIVE"

        await eventually(active)
        code, _ = await nova("POST", f"/servers/{sid}/action", {"os-stop": None})
        assert code == 202
        # read right after the write: the stop is there already
        code, body = await nova("GET", f"/servers/{sid}/os-instance-actions")
        assert code == 200
        log = body["instanceActions"]
        assert [a["action"] for a in log] == ["stop", "create"]
        assert set(log[0]) == {
            "action",
            "instance_uuid",
            "message",
            "project_id",
            "request_id",
            "start_time",
            "user_id",
        }
        assert log[0]["instance_uuid"] == sid and log[0]["request_id"].startswith("req-")
        code, body = await nova("GET", f"/servers/{sid}/os-instance-actions/{log[1]['request_id']}")
        assert code == 200 and body["instanceAction"]["action"] == "create"
        assert "events" not in body["instanceAction"]  # admins only
        code, body = await nova("GET", f"/servers/{sid}/os-instance-actions/req-nope")
        assert code == 404 and "itemNotFound" in body

        # the request id a change was answered with finds its action (as Tempest looks it up)
        async def answered_id(method: str, path: str, body: object) -> str:
            async with (
                aiohttp.ClientSession() as http,
                http.request(method, nova.base + path, json=body, headers=nova.headers) as resp,
            ):
                assert resp.status == 202, await resp.text()
                assert (
                    resp.headers["x-openstack-request-id"] == resp.headers["x-compute-request-id"]
                )
                return resp.headers["x-compute-request-id"]

        created = await answered_id(
            "POST", "/servers", {"server": {**request["server"], "name": "vm2"}}
        )
        sid2 = (await nova("GET", "/servers?name=vm2"))[1]["servers"][0]["id"]
        code, body = await nova("GET", f"/servers/{sid2}/os-instance-actions/{created}")
        assert code == 200 and body["instanceAction"]["action"] == "create"
        started = await answered_id("POST", f"/servers/{sid}/action", {"os-start": {}})
        code, body = await nova("GET", f"/servers/{sid}/os-instance-actions/{started}")
        assert code == 200 and body["instanceAction"]["action"] == "start"
