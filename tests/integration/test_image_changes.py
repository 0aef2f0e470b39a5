"""The image service's changes after a create: JSON-patch updates, tags, deactivation,
members (a shared image another project accepts), glance-direct import and the schemas;
through HTTP against a real API server."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp

from state.envelope import Ref
from state.store import Store
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import api_cloud
from tests.integration.test_image_service import Glance

PATCH = "application/openstack-images-v2.1-json-patch"


async def patch(glance: Glance, iid: str, ops: Any, kind: str = PATCH) -> tuple[int, Any]:
    headers = {"X-Auth-Token": glance.token, "Content-Type": kind}
    async with (
        aiohttp.ClientSession() as http,
        http.patch(f"{glance.base}/images/{iid}", json=ops, headers=headers) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        return resp.status, body


async def project_id(store: Store, name: str) -> str:
    return str((await store.get(Ref("Project", None, name)))["metadata"]["uid"]).replace("-", "")


async def test_patch_tags_and_deactivation(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    flavor = {"vcpus": 1, "ramMiB": 64, "diskGiB": 1}
    await store.create({"kind": "Flavor", "metadata": {"name": "small"}, "spec": flavor})
    async with api_cloud(store, sql_url, image_dir=tmp_path / "images") as base:
        demo = Glance(base, await token_of(base, "demo", "demo-secret", "demo"))
        other = Glance(base, await token_of(base, "other", "other-secret", "other"))
        admin = Glance(base, await token_of(base, "admin", "admin-secret", "admin"))
        create = {"name": "base", "disk_format": "raw", "container_format": "bare"}
        code, made, _ = await demo("POST", "/images", {**create, "tags": ["a"]})
        assert (
            code == 201
            and made["tags"] == ["a"]
            and made["owner"] == await project_id(store, "demo")
        )
        iid = made["id"]
        assert (await demo("POST", "/images", {**create, "os_glance_x": "1"}))[0] == 403
        assert (await demo("POST", "/images", {**create, "status": "active"}))[0] == 403

        # both of Glance's patch forms; add, replace, remove; all or nothing
        ops = [
            {"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "add", "path": "/os_distro", "value": "debian"},
            {"op": "replace", "path": "/min_ram", "value": 64},
        ]
        code, shown = await patch(demo, iid, ops)
        assert code == 200, shown
        assert (shown["name"], shown["os_distro"], shown["min_ram"]) == ("renamed", "debian", 64)
        code, _ = await patch(
            demo, iid, [{"remove": "/os_distro"}], "application/openstack-images-v2.0-json-patch"
        )
        assert code == 200
        assert "os_distro" not in (await demo("GET", f"/images/{iid}"))[1]
        assert (await patch(demo, iid, [{"op": "remove", "path": "/os_distro"}]))[0] == 409
        assert (await patch(demo, iid, [{"op": "remove", "path": "/name"}]))[0] == 403
        for field in ("os_glance_foo", "status", "checksum", "id"):
            code, _ = await patch(demo, iid, [{"op": "add", "path": f"/{field}", "value": "x"}])
            assert code == 403, field
        bad = [{"op": "replace", "path": "/name", "value": "n"}, {"op": "replace", "path": "/x"}]
        assert (await patch(demo, iid, bad))[0] == 400
        assert (await demo("GET", f"/images/{iid}"))[1]["name"] == "renamed"
        assert (await patch(demo, iid, ops, "application/json"))[0] == 415
        public = [{"op": "replace", "path": "/visibility", "value": "public"}]
        assert (await patch(demo, iid, public))[0] == 403
        assert (await patch(other, iid, [{"op": "add", "path": "/k", "value": "v"}]))[0] == 404

        # the owner: only an admin gives another, known or not
        owner = [{"op": "replace", "path": "/owner", "value": await project_id(store, "other")}]
        assert (await patch(demo, iid, owner))[0] == 403
        code, moved = await patch(admin, iid, owner)
        assert (code, moved["owner"], moved["id"]) == (200, owner[0]["value"], iid)
        assert (await other("GET", f"/images/{iid}"))[0] == 200
        assert (await demo("GET", f"/images/{iid}"))[0] == 404
        code, foreign, _ = await admin("POST", "/images", {**create, "owner": "ab" * 16})
        assert (code, foreign["owner"]) == (201, "ab" * 16)

        # tags
        assert (await other("PUT", f"/images/{iid}/tags/new"))[0] == 204
        assert (await other("GET", f"/images/{iid}"))[1]["tags"] == ["a", "new"]
        assert (await other("DELETE", f"/images/{iid}/tags/a"))[0] == 204
        assert (await other("DELETE", f"/images/{iid}/tags/a"))[0] == 404
        listed = (await other("GET", "/images?tag=new"))[1]["images"]
        assert [i["id"] for i in listed] == [iid]

        # deactivation: only of an image with data; its data then for admins and hosts alone
        assert (await other("POST", f"/images/{iid}/actions/deactivate"))[0] == 403
        assert (await other("PUT", f"/images/{iid}/file", data=b"disk"))[0] == 204
        disk_format = [{"op": "replace", "path": "/disk_format", "value": "qcow2"}]
        assert (await patch(other, iid, disk_format))[0] == 403
        assert (await other("POST", f"/images/{iid}/actions/deactivate"))[0] == 204
        assert (await other("GET", f"/images/{iid}"))[1]["status"] == "deactivated"
        assert (await other("GET", f"/images/{iid}/file"))[0] == 403
        assert (await admin("GET", f"/images/{iid}/file"))[1] == b"disk"
        nova = Nova(base, other.token)
        server = {"server": {"name": "vm", "imageRef": iid, "flavorRef": "small"}}
        code, body = await nova("POST", "/servers", server)
        assert (code, body["badRequest"]["message"]) == (400, f"Image {iid} is not active.")
        assert (await other("POST", f"/images/{iid}/actions/reactivate"))[0] == 204
        assert (await other("GET", f"/images/{iid}/file"))[1] == b"disk"


async def test_members_share_an_image(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with api_cloud(store, sql_url, image_dir=tmp_path / "images") as base:
        demo = Glance(base, await token_of(base, "demo", "demo-secret", "demo"))
        other = Glance(base, await token_of(base, "other", "other-secret", "other"))
        other_id = await project_id(store, "other")
        create = {"name": "shared", "disk_format": "raw", "container_format": "bare"}
        iid = (await demo("POST", "/images", create))[1]["id"]
        private = (await demo("POST", "/images", {**create, "visibility": "private"}))[1]["id"]

        async def listed(query: str = "") -> list[str]:
            code, body, _ = await other("GET", "/images" + query)
            assert code == 200, body
            return [i["id"] for i in body["images"]]

        member = {"member": other_id}
        assert (await demo("POST", f"/images/{private}/members", member))[0] == 403
        assert (await other("POST", f"/images/{iid}/members", member))[0] == 404
        code, made, _ = await demo("POST", f"/images/{iid}/members", member)
        assert code == 200, made
        assert (made["member_id"], made["image_id"], made["status"]) == (other_id, iid, "pending")
        assert (await demo("POST", f"/images/{iid}/members", member))[0] == 409

        # pending: the member sees the image by id, and lists it only when it asks
        assert (await other("GET", f"/images/{iid}"))[0] == 200
        assert iid not in await listed()
        assert await listed("?visibility=shared&member_status=pending") == [iid]
        nova = Nova(base, other.token)

        async def in_compute_list() -> bool:
            code, body = await nova("GET", "/images")
            assert code == 200, body
            return iid in [i["id"] for i in body["images"]]

        assert not await in_compute_list()
        assert (await other("GET", "/images?member_status=maybe"))[0] == 400

        # the owner does not answer for the member; the member answers for itself
        answer = f"/images/{iid}/members/{other_id}"
        assert (await demo("PUT", answer, {"status": "accepted"}))[0] == 403
        assert (await other("PUT", answer, {"status": "maybe"}))[0] == 400
        code, accepted, _ = await other("PUT", answer, {"status": "accepted"})
        assert (code, accepted["status"]) == (200, "accepted")
        assert iid in await listed()
        assert await in_compute_list()
        code, members, _ = await other("GET", f"/images/{iid}/members")
        assert [m["status"] for m in members["members"]] == ["accepted"]
        assert (await other("PUT", answer, {"status": "rejected"}))[0] == 200
        assert iid not in await listed()

        # removed: gone for the member
        assert (await other("DELETE", answer))[0] == 403
        assert (await demo("DELETE", answer))[0] == 204
        assert (await other("GET", f"/images/{iid}"))[0] == 404
        assert (await demo("GET", answer))[0] == 404


async def test_glance_direct_import_and_schemas(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with api_cloud(store, sql_url, image_dir=tmp_path / "images") as base:
        demo = Glance(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Glance(base, await token_of(base, "admin", "admin-secret", "admin"))
        methods = (await demo("GET", "/info/import"))[1]["import-methods"]["value"]
        assert methods == ["glance-direct"]
        create = {"name": "imported", "disk_format": "raw", "container_format": "bare"}
        iid = (await demo("POST", "/images", create))[1]["id"]
        direct = {"method": {"name": "glance-direct"}, "all_stores": True}
        assert (await demo("POST", f"/images/{iid}/import", direct))[0] == 409  # not staged
        assert (await demo("PUT", f"/images/{iid}/stage", data=b"staged data"))[0] == 204
        assert (await demo("GET", f"/images/{iid}"))[1]["status"] == "uploading"
        assert (await demo("PUT", f"/images/{iid}/file", data=b"x"))[0] == 409
        web = {"method": {"name": "web-download"}, "uri": "http://example.com/x"}
        assert (await demo("POST", f"/images/{iid}/import", web))[0] == 400
        assert (await demo("POST", f"/images/{iid}/import", direct))[0] == 202
        code, shown, _ = await demo("GET", f"/images/{iid}")
        assert (shown["status"], shown["size"]) == ("active", len(b"staged data"))
        assert shown["os_hash_value"] == hashlib.sha256(b"staged data").hexdigest()
        assert (await demo("GET", f"/images/{iid}/file"))[1] == b"staged data"
        assert not any((tmp_path / "images" / "staging").iterdir())

        task = {"type": "import", "input": {"import_from": "http://example.com/x.qcow2"}}
        assert (await demo("POST", "/tasks", task))[0] == 403
        code, body, _ = await admin("POST", "/tasks", task)
        assert code == 400 and b"does not pass filtering" in body

        for name in ("image", "images", "member", "members", "metadefs/namespace"):
            code, schema, _ = await demo("GET", f"/schemas/{name}")
            assert (code, schema["name"]) == (200, name.removeprefix("metadefs/"))
        assert (await demo("GET", "/schemas/nothing"))[0] == 404
        code, page, _ = await demo("POST", f"/images/{iid}/file")
        assert code == 405 and page.startswith(b"<html><body><h1>405 "), page


async def test_list_sorts_filters_by_size_and_hides(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with api_cloud(store, sql_url, image_dir=tmp_path / "images") as base:
        demo = Glance(base, await token_of(base, "demo", "demo-secret", "demo"))
        create = {"disk_format": "raw", "container_format": "bare"}
        ids = {}
        for size in (10, 30, 20):
            iid = (await demo("POST", "/images", {**create, "name": f"s{size}"}))[1]["id"]
            assert (await demo("PUT", f"/images/{iid}/file", data=b"x" * size))[0] == 204
            ids[size] = iid

        async def sizes(query: str) -> list[int]:
            code, body, _ = await demo("GET", "/images" + query)
            assert code == 200, body
            return [i["size"] for i in body["images"]]

        assert await sizes("?sort=size:desc") == [30, 20, 10]
        assert await sizes("?sort_key=size&sort_dir=asc") == [10, 20, 30]
        assert await sizes("?size_min=15&size_max=25") == [20]
        assert await sizes("?size=30") == [30]
        stamps = [i["created_at"] for i in (await demo("GET", "/images"))[1]["images"]]
        assert stamps == sorted(stamps, reverse=True)  # newest first
        assert (await demo("GET", "/images?sort_key=colour"))[0] == 400
        assert (await demo("GET", "/images?size_min=big"))[0] == 400

        hidden = (await demo("POST", "/images", {**create, "os_hidden": True}))[1]
        assert hidden["os_hidden"] is True
        listed = [i["id"] for i in (await demo("GET", "/images"))[1]["images"]]
        assert hidden["id"] not in listed
        _, body, _ = await demo("GET", "/images?os_hidden=true")
        assert [i["id"] for i in body["images"]] == [hidden["id"]]
        shown = [{"op": "replace", "path": "/os_hidden", "value": False}]
        assert (await patch(demo, hidden["id"], shown))[0] == 200
        assert hidden["id"] in [i["id"] for i in (await demo("GET", "/images"))[1]["images"]]
