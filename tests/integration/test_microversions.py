"""Compute API microversions 2.1 to 2.47 on a simulated host: each view has exactly Nova's
fields at each version (the sets below are those of nova's doc/api_samples), and what the
versions add or change works."""

from __future__ import annotations

from pathlib import Path

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud

#: a server's show at 2.1 for a member of its project
SHOW_21 = {
    "OS-DCF:diskConfig",
    "OS-EXT-AZ:availability_zone",
    "OS-EXT-STS:power_state",
    "OS-EXT-STS:task_state",
    "OS-EXT-STS:vm_state",
    "OS-SRV-USG:launched_at",
    "OS-SRV-USG:terminated_at",
    "accessIPv4",
    "accessIPv6",
    "addresses",
    "config_drive",
    "created",
    "flavor",
    "hostId",
    "id",
    "image",
    "key_name",
    "links",
    "metadata",
    "name",
    "os-extended-volumes:volumes_attached",
    "progress",
    "security_groups",
    "status",
    "tenant_id",
    "updated",
    "user_id",
}
#: what an admin sees beside, at 2.1 and from 2.3
ADMIN_21 = {
    "OS-EXT-SRV-ATTR:host",
    "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "OS-EXT-SRV-ATTR:instance_name",
}
ADMIN_23 = ADMIN_21 | {
    "OS-EXT-SRV-ATTR:hostname",
    "OS-EXT-SRV-ATTR:kernel_id",
    "OS-EXT-SRV-ATTR:launch_index",
    "OS-EXT-SRV-ATTR:ramdisk_id",
    "OS-EXT-SRV-ATTR:reservation_id",
    "OS-EXT-SRV-ATTR:root_device_name",
    "OS-EXT-SRV-ATTR:user_data",
}
#: update's answer at 2.1, and at 2.47 (servers/v2.47/server-update-resp.json)
UPDATE_21 = {
    "OS-DCF:diskConfig",
    "accessIPv4",
    "accessIPv6",
    "addresses",
    "created",
    "flavor",
    "hostId",
    "id",
    "image",
    "links",
    "metadata",
    "name",
    "progress",
    "status",
    "tenant_id",
    "updated",
    "user_id",
}
UPDATE_247 = UPDATE_21 | {"description", "locked", "tags"}
EMBEDDED_FLAVOR = {"disk", "ephemeral", "extra_specs", "original_name", "ram", "swap", "vcpus"}
QUOTA_21 = {
    "id",
    "cores",
    "fixed_ips",
    "floating_ips",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
    "injected_files",
    "instances",
    "key_pairs",
    "metadata_items",
    "ram",
    "security_group_rules",
    "security_groups",
    "server_group_members",
    "server_groups",
}
QUOTA_236 = QUOTA_21 - {"fixed_ips", "floating_ips", "security_group_rules", "security_groups"}
#: limits at 2.39 (limits/v2.39/limit-get-resp.json)
LIMITS_239 = {
    "maxPersonality",
    "maxPersonalitySize",
    "maxServerMeta",
    "maxTotalCores",
    "maxTotalInstances",
    "maxTotalKeypairs",
    "maxTotalRAMSize",
    "maxServerGroups",
    "maxServerGroupMembers",
    "totalCoresUsed",
    "totalInstancesUsed",
    "totalRAMUsed",
    "totalServerGroupsUsed",
}


async def test_views_and_features_by_version(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        server = {"name": "vm", "imageRef": image_id, "flavorRef": "small"}

        # 2.37: networks are required; 2.19: a description at create
        code, body = await demo.at("2.37")("POST", "/servers", {"server": server})
        assert code == 400 and "'networks' is a required property" in body["badRequest"]["message"]
        bad_net = {**server, "networks": [{"uuid": "not-a-uuid"}]}
        assert (await demo.at("2.37")("POST", "/servers", {"server": bad_net}))[0] == 400
        described = {**server, "networks": "none", "description": "first"}
        code, created = await demo.at("2.47")("POST", "/servers", {"server": described})
        assert code == 202
        sid = created["server"]["id"]

        async def active() -> bool:
            return await demo.status_of(sid) == "ACTIVE"

        await eventually(active)

        # the show view at each version, for a member and for an admin
        gated = {"2.9": {"locked"}, "2.19": {"description"}, "2.26": {"tags"}}
        for version in ("2.1", "2.3", "2.9", "2.16", "2.19", "2.26", "2.47"):
            added = set().union(*(f for v, f in gated.items() if _at_least(version, v)))
            _, body = await demo.at(version)("GET", f"/servers/{sid}")
            assert set(body["server"]) == SHOW_21 | added, version
            _, body = await admin.at(version)("GET", f"/servers/{sid}")
            extended = ADMIN_23 if _at_least(version, "2.3") else ADMIN_21
            status = {"host_status"} if _at_least(version, "2.16") else set()
            assert set(body["server"]) == SHOW_21 | added | extended | status, version
        _, body = await admin.at("2.47")("GET", f"/servers/{sid}")
        shown = body["server"]
        assert set(shown["flavor"]) == EMBEDDED_FLAVOR
        assert (shown["flavor"]["original_name"], shown["flavor"]["vcpus"]) == ("small", 1)
        assert (shown["host_status"], shown["locked"], shown["description"]) == (
            "UP",
            False,
            "first",
        )
        assert shown["OS-EXT-SRV-ATTR:reservation_id"].startswith("r-")
        assert (shown["OS-EXT-SRV-ATTR:launch_index"], shown["OS-EXT-SRV-ATTR:hostname"]) == (
            0,
            "vm",
        )
        assert shown["OS-SRV-USG:launched_at"] is not None
        _, body = await demo.at("2.47")("GET", "/servers/detail")
        assert [set(s["flavor"]) for s in body["servers"]] == [EMBEDDED_FLAVOR]
        _, body = await demo.at("2.1")("GET", "/servers/detail")
        assert set(body["servers"][0]["flavor"]) == {"id", "links"}

        # 2.19: update's description, and the fields update answers with
        code, body = await demo.at("2.1")(
            "PUT", f"/servers/{sid}", {"server": {"description": "x"}}
        )
        assert code == 400
        code, body = await demo.at("2.47")(
            "PUT", f"/servers/{sid}", {"server": {"description": "d"}}
        )
        assert code == 200 and set(body["server"]) == UPDATE_247
        assert body["server"]["description"] == "d"
        code, body = await demo.at("2.1")("PUT", f"/servers/{sid}", {"server": {"name": "vm"}})
        assert code == 200 and set(body["server"]) == UPDATE_21

        # 2.26: tags, and the list filters on them
        assert (await demo.at("2.25")("GET", f"/servers/{sid}/tags"))[0] == 404
        tagged = demo.at("2.26")
        assert (await tagged("PUT", f"/servers/{sid}/tags/red", None))[0] == 201
        assert (await tagged("PUT", f"/servers/{sid}/tags/red", None))[0] == 204
        assert (await tagged("GET", f"/servers/{sid}/tags/red"))[0] == 204
        assert (await tagged("GET", f"/servers/{sid}/tags/blue"))[0] == 404
        assert (await tagged("PUT", f"/servers/{sid}/tags/a,b", None))[0] == 400
        code, body = await tagged("PUT", f"/servers/{sid}/tags", {"tags": ["red", "green"]})
        assert (code, body) == (200, {"tags": ["red", "green"]})
        assert (await tagged("PUT", f"/servers/{sid}/tags", {"tags": [str(i) for i in range(51)]}))[
            0
        ] == 400
        assert (await tagged("GET", f"/servers/{sid}"))[1]["server"]["tags"] == ["red", "green"]

        async def listed(query: str) -> list[str]:
            code, body = await tagged("GET", f"/servers?{query}")
            assert code == 200, body
            return [s["id"] for s in body["servers"]]

        async def tags_in_sql() -> bool:
            return await listed("tags=red,green") == [sid]

        await eventually(tags_in_sql)
        assert await listed("tags=red,blue") == []
        assert await listed("tags-any=blue,green") == [sid]
        assert await listed("not-tags=red") == []
        assert await listed("not-tags-any=blue") == [sid]
        assert await listed(f"reservation_id={shown['OS-EXT-SRV-ATTR:reservation_id']}") == [sid]
        assert (await tagged("DELETE", f"/servers/{sid}/tags/red"))[0] == 204
        assert (await tagged("DELETE", f"/servers/{sid}/tags/red"))[0] == 404
        assert (await tagged("DELETE", f"/servers/{sid}/tags"))[0] == 204
        assert (await tagged("GET", f"/servers/{sid}/tags"))[1] == {"tags": []}

        # 2.38: an unknown status is a 400, before it matched nothing
        assert await demo.at("2.37")("GET", "/servers?status=bogus") == (200, {"servers": []})
        code, body = await demo.at("2.38")("GET", "/servers?status=bogus")
        assert (code, body["badRequest"]["message"]) == (400, "Invalid status value")

        # 2.21: the actions of a deleted server
        assert (await demo("DELETE", f"/servers/{sid}"))[0] == 204

        async def gone() -> bool:
            return (await demo("GET", f"/servers/{sid}"))[0] == 404

        await eventually(gone)
        assert (await demo("GET", f"/servers/{sid}/os-instance-actions"))[0] == 404
        code, body = await demo.at("2.21")("GET", f"/servers/{sid}/os-instance-actions")
        assert code == 200 and {a["action"] for a in body["instanceActions"]} >= {
            "create",
            "delete",
        }
        other = Nova(base, await token_of(base, "other", "other-secret", "other"), "2.21")
        assert (await other("GET", f"/servers/{sid}/os-instance-actions"))[0] == 404


async def test_other_resources_by_version(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))

        # key pairs: 2.2's type and status codes, x509 certificates, 2.35's paging
        code, body = await demo("POST", "/os-keypairs", {"keypair": {"name": "k1"}})
        assert code == 200 and "type" not in body["keypair"]
        code, body = await demo.at("2.2")("POST", "/os-keypairs", {"keypair": {"name": "k2"}})
        assert code == 201 and body["keypair"]["type"] == "ssh"
        x509 = {"keypair": {"name": "k3", "type": "x509"}}
        code, body = await demo.at("2.2")("POST", "/os-keypairs", x509)
        assert code == 201 and body["keypair"]["public_key"].startswith(
            "-----BEGIN CERTIFICATE-----"
        )
        assert len(body["keypair"]["fingerprint"].split(":")) == 20
        bad = {"keypair": {"name": "k4", "type": "pgp"}}
        assert (await demo.at("2.2")("POST", "/os-keypairs", bad))[0] == 400
        code, body = await demo.at("2.35")("GET", "/os-keypairs?limit=2")
        assert [k["keypair"]["name"] for k in body["keypairs"]] == ["k1", "k2"]
        assert "marker=k2" in body["keypairs_links"][0]["href"]
        code, body = await demo.at("2.35")("GET", "/os-keypairs?marker=k2")
        assert [k["keypair"]["name"] for k in body["keypairs"]] == ["k3"]
        assert "keypairs_links" not in body
        assert (await demo.at("2.35")("GET", "/os-keypairs?marker=nope"))[0] == 400
        assert (await demo.at("2.10")("GET", "/os-keypairs?user_id=someone"))[0] == 403
        assert (await demo.at("2.2")("DELETE", "/os-keypairs/k1"))[0] == 204
        assert (await demo("DELETE", "/os-keypairs/k2"))[0] == 202

        # server groups: 2.13's owner fields, 2.15's soft policies
        soft = {"server_group": {"name": "g", "policies": ["soft-affinity"]}}
        assert (await demo.at("2.14")("POST", "/os-server-groups", soft))[0] == 400
        code, body = await demo.at("2.15")("POST", "/os-server-groups", soft)
        assert code == 200 and body["server_group"]["policies"] == ["soft-affinity"]
        gid = body["server_group"]["id"]
        _, body = await demo.at("2.12")("GET", f"/os-server-groups/{gid}")
        assert set(body["server_group"]) == {"id", "name", "policies", "members", "metadata"}
        _, body = await demo.at("2.13")("GET", f"/os-server-groups/{gid}")
        assert set(body["server_group"]) == {
            "id",
            "name",
            "policies",
            "members",
            "metadata",
            "project_id",
            "user_id",
        }
        assert body["server_group"]["user_id"] and body["server_group"]["project_id"]

        # quota sets and limits: 2.36 drops the network fields, 2.39 maxImageMeta
        _, body = await demo("GET", "/os-quota-sets/demo")
        assert set(body["quota_set"]) == QUOTA_21
        _, body = await demo.at("2.36")("GET", "/os-quota-sets/demo")
        assert set(body["quota_set"]) == QUOTA_236
        change = {"quota_set": {"floating_ips": 3}}
        assert (await admin.at("2.36")("PUT", "/os-quota-sets/demo", change))[0] == 400
        _, body = await demo.at("2.39")("GET", "/limits")
        assert set(body["limits"]["absolute"]) == LIMITS_239
        _, body = await demo.at("2.36")("GET", "/limits")
        assert set(body["limits"]["absolute"]) == LIMITS_239 | {"maxImageMeta"}

        # services: 2.11's forced_down; hypervisors: 2.28's cpu_info, 2.33's paging
        async def host_listed() -> bool:
            return len((await admin("GET", "/os-hypervisors"))[1]["hypervisors"]) == 1

        await eventually(host_listed)
        _, body = await admin("GET", "/os-services")
        assert "forced_down" not in body["services"][0]
        down = {"host": "sim-1", "binary": "nova-compute", "forced_down": True}
        # before 2.11 forced_down is no field of the body: Nova's schema refuses it
        assert (await admin.at("2.10")("PUT", "/os-services/force-down", down))[0] == 400
        code, body = await admin.at("2.11")("PUT", "/os-services/force-down", down)
        assert (code, body["service"]) == (200, down)

        async def forced() -> bool:
            _, body = await admin.at("2.11")("GET", "/os-services")
            return body["services"][0]["forced_down"] and body["services"][0]["state"] == "down"

        await eventually(forced)
        up = {**down, "forced_down": False}
        assert (await admin.at("2.11")("PUT", "/os-services/force-down", up))[0] == 200
        _, body = await admin("GET", "/os-hypervisors/detail")
        assert isinstance(body["hypervisors"][0]["cpu_info"], str)
        _, body = await admin.at("2.28")("GET", "/os-hypervisors/detail")
        assert body["hypervisors"][0]["cpu_info"]["topology"]["cores"] == 8
        _, body = await admin.at("2.33")("GET", "/os-hypervisors?limit=1")
        assert len(body["hypervisors"]) == 1 and body["hypervisors_links"][0]["rel"] == "next"
        hid = body["hypervisors"][0]["id"]
        _, body = await admin.at("2.33")("GET", f"/os-hypervisors?marker={hid}")
        assert body == {"hypervisors": []}
        assert (await admin.at("2.33")("GET", "/os-hypervisors?marker=999999"))[0] == 400

        # aggregates: 2.41's uuid
        code, body = await admin.at("2.41")("POST", "/os-aggregates", {"aggregate": {"name": "a"}})
        assert code == 200 and len(body["aggregate"]["uuid"]) == 36
        _, body = await admin("GET", f"/os-aggregates/{body['aggregate']['id']}")
        assert "uuid" not in body["aggregate"]

        # usage: 2.40's paging over the servers counted
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        for name in ("u1", "u2"):
            server = {"name": name, "imageRef": image_id, "flavorRef": "small"}
            assert (await demo("POST", "/servers", {"server": server}))[0] == 202

        async def two_used() -> bool:
            _, body = await admin("GET", "/os-simple-tenant-usage?detailed=1")
            return sum(len(u["server_usages"]) for u in body["tenant_usages"]) == 2

        await eventually(two_used)
        code, body = await admin.at("2.40")("GET", "/os-simple-tenant-usage?detailed=1&limit=1")
        assert code == 200 and len(body["tenant_usages"][0]["server_usages"]) == 1
        assert body["tenant_usages_links"][0]["rel"] == "next"


def _at_least(version: str, since: str) -> bool:
    return tuple(map(int, version.split("."))) >= tuple(map(int, since.split(".")))
