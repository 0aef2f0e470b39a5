"""The Compute API's image proxy (until 2.36): lists, filters, paging, show, delete and
image metadata over the Image objects the image service shows, in Nova's shapes."""

from __future__ import annotations

from pathlib import Path

from state.envelope import Ref
from state.store import Store
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import api_cloud

IMAGE_FIELDS = {
    "OS-EXT-IMG-SIZE:size",
    "created",
    "id",
    "links",
    "metadata",
    "minDisk",
    "minRam",
    "name",
    "progress",
    "status",
    "updated",
}


async def test_image_proxy(store: Store, tmp_path: Path) -> None:
    async with api_cloud(store, f"sqlite:///{tmp_path / 'api.sqlite'}") as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        other = Nova(base, await token_of(base, "other", "other-secret", "other"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        public = await store.create(
            {
                "kind": "Image",
                "metadata": {"name": "cirros"},
                "spec": {"url": "http://example.invalid/c.img", "minRamMiB": 64},
            }
        )
        snap = await store.create(
            {
                "kind": "Image",
                "metadata": {"name": "snap", "project": "demo"},
                "spec": {
                    "url": "http://example.invalid/s.img",
                    "minDiskGiB": 5,
                    "properties": {"image_type": "snapshot", "instance_uuid": "abc", "k": "v"},
                },
            }
        )
        pid, sid = public["metadata"]["uid"], snap["metadata"]["uid"]
        code, body = await demo("GET", "/images")
        assert code == 200
        assert {i["id"] for i in body["images"]} == {pid, sid}
        assert set(body["images"][0]) == {"id", "name", "links"}
        assert [link["rel"] for link in body["images"][0]["links"]] == [
            "self",
            "bookmark",
            "alternate",
        ]
        _, theirs = await other("GET", "/images")
        assert [i["id"] for i in theirs["images"]] == [pid]
        code, body = await demo("GET", f"/images/{sid}")
        image = body["image"]
        assert IMAGE_FIELDS <= set(image) and image["server"]["id"] == "abc"
        assert (image["status"], image["progress"], image["minDisk"]) == ("ACTIVE", 100, 5)
        assert image["metadata"] == {"image_type": "snapshot", "instance_uuid": "abc", "k": "v"}

        async def ids(query: str) -> list[str]:
            code, body = await demo("GET", f"/images/detail?{query}")
            assert code == 200, body
            return [i["id"] for i in body["images"]]

        assert await ids("type=snapshot") == [sid]
        assert await ids("server=abc") == [sid]
        assert await ids("minRam=32") == [pid]
        assert await ids("name=cirros&status=ACTIVE") == [pid]
        first = (await ids("limit=1"))[0]
        code, body = await demo("GET", "/images?limit=1")
        assert "marker=" in body["images_links"][0]["href"]
        assert await ids(f"marker={first}") == [i for i in (pid, sid) if i != first]
        assert (await demo("GET", "/images?marker=nope"))[0] == 400
        code, body = await other("GET", f"/images/{sid}")
        assert code == 404 and body["itemNotFound"]["message"] == "Image not found."
        assert (await demo.at("2.36")("GET", "/images"))[0] == 404

        # metadata: read, merge, replace, one item; only the image's project changes it
        assert await demo("GET", f"/images/{sid}/metadata/k") == (200, {"meta": {"k": "v"}})
        assert (await demo("GET", f"/images/{sid}/metadata/nope"))[0] == 404
        code, body = await demo("POST", f"/images/{sid}/metadata", {"metadata": {"a": "1"}})
        assert code == 200 and body["metadata"]["a"] == "1" and body["metadata"]["k"] == "v"
        assert await demo("PUT", f"/images/{sid}/metadata/b", {"meta": {"b": "2"}}) == (
            200,
            {"meta": {"b": "2"}},
        )
        code, body = await demo("PUT", f"/images/{sid}/metadata/b", {"meta": {"c": "2"}})
        assert code == 400 and body["badRequest"]["message"] == "Request body and URI mismatch"
        assert (await demo("DELETE", f"/images/{sid}/metadata/a"))[0] == 204
        assert (await demo("DELETE", f"/images/{sid}/metadata/a"))[0] == 404
        _, body = await demo("GET", f"/images/{sid}/metadata")
        assert body["metadata"] == {
            "image_type": "snapshot",
            "instance_uuid": "abc",
            "k": "v",
            "b": "2",
        }
        assert await demo("PUT", f"/images/{sid}/metadata", {"metadata": {"x": "y"}}) == (
            200,
            {"metadata": {"x": "y"}},
        )
        stored = await store.get(Ref("Image", "demo", "snap"))
        assert stored["spec"]["properties"] == {"x": "y"}
        code, body = await demo("POST", f"/images/{pid}/metadata", {"metadata": {"a": "1"}})
        assert code == 403 and "forbidden" in body
        too_many = {"metadata": {f"k{i}": "v" for i in range(129)}}
        assert (await demo("PUT", f"/images/{sid}/metadata", too_many))[0] == 403

        # delete: the project's own, not a public one (admins may)
        assert (await demo("DELETE", f"/images/{pid}"))[0] == 403
        assert (await demo("DELETE", f"/images/{sid}"))[0] == 204
        assert (await demo("GET", f"/images/{sid}"))[0] == 404
        assert (await admin("DELETE", f"/images/{pid}"))[0] == 204
