"""os-simple-tenant-usage from the conductor's SQL on a simulated host."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S")


async def test_simple_tenant_usage(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        ids = []
        for name in ("kept", "gone"):
            server = {"name": name, "imageRef": image_id, "flavorRef": "small"}
            code, body = await demo("POST", "/servers", {"server": server})
            assert code == 202
            ids.append(body["server"]["id"])

        async def active() -> bool:
            return all([await demo.status_of(sid) == "ACTIVE" for sid in ids])

        await eventually(active)
        assert (await demo("DELETE", f"/servers/{ids[1]}"))[0] == 204

        async def deleted() -> bool:
            return (await demo("GET", f"/servers/{ids[1]}"))[0] == 404

        await eventually(deleted)
        after = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        period = f"start={_stamp(before)}&end={_stamp(after)}"
        demo_id = (await store.get(Ref("Project", None, "demo")))["metadata"]["uid"].replace(
            "-", ""
        )

        async def usage_of_both() -> dict:
            code, body = await admin("GET", f"/os-simple-tenant-usage?{period}&detailed=1")
            assert code == 200
            (tenant,) = body["tenant_usages"]
            assert len(tenant["server_usages"]) == 2
            return dict(tenant)

        tenant = await usage_of_both()
        assert tenant["tenant_id"] == demo_id
        by_name = {s["name"]: s for s in tenant["server_usages"]}
        assert by_name["kept"]["state"] == "active" and by_name["kept"]["ended_at"] is None
        assert by_name["gone"]["state"] == "terminated" and by_name["gone"]["ended_at"]
        for s in by_name.values():
            assert (s["vcpus"], s["memory_mb"], s["local_gb"], s["flavor"]) == (1, 256, 1, "small")
            assert 0 < s["hours"] < 0.1 and s["tenant_id"] == demo_id
        hours = sum(s["hours"] for s in by_name.values())
        assert abs(tenant["total_hours"] - hours) < 1e-9
        assert abs(tenant["total_memory_mb_usage"] - 256 * hours) < 1e-6
        _, brief = await admin("GET", f"/os-simple-tenant-usage?{period}")
        assert "server_usages" not in brief["tenant_usages"][0]

        # a member sees its own project's, not another's, nor the list
        code, body = await demo("GET", f"/os-simple-tenant-usage/{demo_id}?{period}")
        assert code == 200 and len(body["tenant_usage"]["server_usages"]) == 2
        other_id = (await store.get(Ref("Project", None, "other")))["metadata"]["uid"].replace(
            "-", ""
        )
        assert (await demo("GET", f"/os-simple-tenant-usage/{other_id}?{period}"))[0] == 403
        assert (await demo("GET", f"/os-simple-tenant-usage?{period}"))[0] == 403
        # a period before they ran has nothing
        early = "start=2020-01-01T00:00:00&end=2020-01-02T00:00:00"
        assert (await demo("GET", f"/os-simple-tenant-usage/{demo_id}?{early}"))[1] == {
            "tenant_usage": {}
        }
        code, body = await demo("GET", f"/os-simple-tenant-usage/{demo_id}?start=yesterday")
        assert (code, body["badRequest"]["message"]) == (
            400,
            "Invalid input received: Datetime is in invalid format",
        )
        reversed_ = f"start={_stamp(after)}&end={_stamp(before)}"
        assert (await demo("GET", f"/os-simple-tenant-usage/{demo_id}?{reversed_}"))[0] == 400
