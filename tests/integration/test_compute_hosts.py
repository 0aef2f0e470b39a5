"""os-hosts (until 2.43) and os-instance_usage_audit_log on a simulated host: Nova's
shapes, admins only, a host disabled and enabled through os-hosts, Nova's 501s for what a
libvirt host does not do, and an audit log that says no audit ran."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import quote

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


async def test_hosts_and_usage_audit_log(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        assert (await demo("GET", "/os-hosts"))[0] == 403

        async def listed() -> bool:
            _, body = await admin("GET", "/os-hosts")
            return bool(body["hosts"])

        await eventually(listed)
        _, body = await admin("GET", "/os-hosts")
        (host,) = body["hosts"]
        assert host == {"host_name": "sim-1", "service": "compute", "zone": host["zone"]}
        assert (await admin("GET", f"/os-hosts?zone={host['zone']}"))[1]["hosts"] == [host]
        assert (await admin("GET", "/os-hosts?zone=nowhere"))[1] == {"hosts": []}
        assert (await admin("GET", "/os-hosts?zone="))[1]["hosts"] == [host]
        code, body = await admin("GET", "/os-hosts/sim-1")
        assert code == 200
        rows = [r["resource"] for r in body["host"]]
        assert [r["project"] for r in rows] == ["(total)", "(used_now)", "(used_max)"]
        assert all(r["host"] == "sim-1" for r in rows)
        assert (rows[0]["cpu"], rows[0]["memory_mb"], rows[0]["disk_gb"]) == (8, 8192, 100)
        code, body = await admin("GET", "/os-hosts/nope")
        assert code == 404 and body["itemNotFound"]["message"] == (
            "Compute host nope could not be found."
        )
        assert (await admin.at("2.43")("GET", "/os-hosts"))[0] == 404

        # disabling through os-hosts disables the Host, as os-services does
        assert await admin("PUT", "/os-hosts/sim-1", {"status": "disable"}) == (
            200,
            {"host": "sim-1", "status": "disabled"},
        )
        assert (await store.get(Ref("Host", None, "sim-1")))["spec"]["enabled"] is False
        assert (await admin("PUT", "/os-hosts/sim-1", {"status": "enable"}))[1]["status"] == (
            "enabled"
        )
        assert (await store.get(Ref("Host", None, "sim-1")))["spec"]["enabled"] is True
        for bad in ({}, {"status": "on"}, {"status": "enable", "bogus": 1}):
            code, body = await admin("PUT", "/os-hosts/sim-1", bad)
            assert code == 400 and "badRequest" in body, bad
        code, body = await admin("PUT", "/os-hosts/sim-1", {"maintenance_mode": "enable"})
        assert code == 501 and "notImplemented" in body
        assert (await admin("PUT", "/os-hosts/nope", {"status": "enable"}))[0] == 404
        assert (await demo("PUT", "/os-hosts/sim-1", {"status": "enable"}))[0] == 403
        for action in ("startup", "shutdown", "reboot"):
            assert (await admin("GET", f"/os-hosts/sim-1/{action}"))[0] == 501
            assert (await admin("GET", f"/os-hosts/nope/{action}"))[0] == 404
            assert (await demo("GET", f"/os-hosts/sim-1/{action}"))[0] == 403

        # the usage audit log: no host ran one
        assert (await demo("GET", "/os-instance_usage_audit_log"))[0] == 403
        code, body = await admin("GET", "/os-instance_usage_audit_log")
        assert code == 200
        log = body["instance_usage_audit_logs"]
        assert (log["hosts_not_run"], log["num_hosts"], log["log"]) == (["sim-1"], 1, {})
        assert log["overall_status"] == "0 of 1 hosts done. 0 errors."
        code, body = await admin(
            "GET", f"/os-instance_usage_audit_log/{quote('2026-03-15 10:00:00')}"
        )
        assert code == 200
        shown = body["instance_usage_audit_log"]
        assert (shown["period_beginning"], shown["period_ending"]) == (
            "2026-02-01 00:00:00",
            "2026-03-01 00:00:00",
        )
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        assert (await admin("GET", f"/os-instance_usage_audit_log/{quote(now)}"))[0] == 200
        code, body = await admin("GET", "/os-instance_usage_audit_log/invalid_time")
        assert code == 400 and "Invalid timestamp" in body["badRequest"]["message"]
