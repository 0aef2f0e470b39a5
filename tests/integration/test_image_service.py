"""The image service's writes: create, upload, download and delete through HTTP and
openstacksdk; hostd reads an uploaded image back with its own credentials into its cache."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import aiohttp
import openstack
import pytest

from apiserver.image_data import ImageLimits
from hostd.image_service import ImageService
from hostd.images import ImageCache, ImageFetchError
from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud, make_user

DATA = os.urandom(3 * (1 << 20) + 123)


class Glance:
    def __init__(self, base: str, token: str) -> None:
        self.base = f"{base}/image/v2"
        self.token = token

    async def __call__(
        self, method: str, path: str, json: Any = None, data: bytes | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"X-Auth-Token": self.token}
        if data is not None:
            headers["Content-Type"] = "application/octet-stream"
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.base + path, json=json, data=data, headers=headers) as resp,
        ):
            raw = await resp.read()
            body: Any = raw
            if resp.content_type == "application/json":
                body = await resp.json()
            return resp.status, body, dict(resp.headers)


async def test_upload_download_delete_and_hostd_reads_it(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    images_dir = tmp_path / "images"
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "small"},
            "spec": {"vcpus": 1, "ramMiB": 64, "diskGiB": 1},
        }
    )
    await make_user(store, "hostd", [{"role": "service"}])  # hostd's own user
    async with api_cloud(store, sql_url, image_dir=images_dir) as base:
        demo = Glance(base, await token_of(base, "demo", "demo-secret", "demo"))
        other = Glance(base, await token_of(base, "other", "other-secret", "other"))
        admin = Glance(base, await token_of(base, "admin", "admin-secret", "admin"))
        create = {"name": "My Image", "disk_format": "qcow2", "container_format": "bare"}
        code, made, headers = await demo("POST", "/images", create)
        assert code == 201, made
        iid = made["id"]
        assert (made["name"], made["status"], made["visibility"]) == (
            "My Image",
            "queued",
            "shared",
        )
        assert headers["Location"].endswith(f"/image/v2/images/{iid}")
        # a server of an image without data: Nova's 400
        nova = Nova(base, demo.token)
        server = {"server": {"name": "vm", "imageRef": iid, "flavorRef": "small"}}
        code, body = await nova("POST", "/servers", server)
        assert (code, body["badRequest"]["message"]) == (400, f"Image {iid} is not active.")

        assert (await other("PUT", f"/images/{iid}/file", data=DATA))[0] == 404
        assert (await demo("PUT", f"/images/{iid}/file", data=DATA))[0] == 204
        assert (await demo("PUT", f"/images/{iid}/file", data=DATA))[0] == 409
        code, shown, _ = await demo("GET", f"/images/{iid}")
        assert (shown["status"], shown["size"]) == ("active", len(DATA))
        assert shown["checksum"] == hashlib.md5(DATA).hexdigest()
        assert shown["os_hash_value"] == hashlib.sha256(DATA).hexdigest()
        code, data, headers = await demo("GET", f"/images/{iid}/file")
        assert (code, data == DATA) == (200, True)
        assert headers["Content-MD5"] == shown["checksum"]
        assert (await other("GET", f"/images/{iid}/file"))[0] == 404

        # hostd, with its own login (role service), reads it into its cache, verified
        service = ImageService(base, "hostd", "hostd-secret")
        cache = ImageCache(tmp_path / "cache", service)
        spec = {"uid": iid, "name": "my", "checksum": f"sha256:{shown['os_hash_value']}"}
        path = await cache.fetch({**spec, "sizeBytes": len(DATA)})
        assert path.read_bytes() == DATA
        wrong = ImageCache(tmp_path / "cache2", ImageService(base, "hostd", "nope"))
        with pytest.raises(ImageFetchError, match="login"):
            await wrong.fetch(spec)

        # only admins make public images; protected ones are not deleted
        public = {**create, "visibility": "public"}
        assert (await demo("POST", "/images", public))[0] == 403
        code, pub, _ = await admin(
            "POST", "/images", {**public, "protected": True, "os_distro": "x"}
        )
        assert code == 201 and pub["os_distro"] == "x"
        assert pub["id"] in [i["id"] for i in (await other("GET", "/images"))[1]["images"]]
        assert (await admin("DELETE", f"/images/{pub['id']}"))[0] == 403
        assert (await demo("POST", "/images", {**create, "min_ram": "lots"}))[0] == 400

        assert (await other("DELETE", f"/images/{iid}"))[0] == 404
        assert (await demo("DELETE", f"/images/{iid}"))[0] == 204
        assert (await demo("GET", f"/images/{iid}"))[0] == 404
        assert not (images_dir / iid).exists()

        # openstacksdk: create with data, download (it checks the checksum), delete
        assert await asyncio.to_thread(_sdk_round_trip, base, DATA[:100_000])


async def test_create_image_snapshots_a_server(store: Store, tmp_path: Path) -> None:
    """createImage: a queued private Image the server's (simulated) host uploads its disk
    into; then a server boots from it."""
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    await make_user(store, "hostd", [{"role": "service"}])  # hostd's own user
    async with api_cloud(store, sql_url, image_dir=tmp_path / "images") as base:
        uploads = ImageService(base, "hostd", "hostd-secret")
        async with hostd_cloud(store, tmp_path, uploads):
            demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
            other = Nova(base, await token_of(base, "other", "other-secret", "other"))
            glance = Glance(base, demo.headers["X-Auth-Token"])
            tiny = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
            server = {"server": {"name": "vm", "imageRef": tiny, "flavorRef": "small"}}
            code, body = await demo("POST", "/servers", server)
            assert code == 202, body
            sid = body["server"]["id"]

            async def active(sid: str) -> bool:
                return await demo.status_of(sid) == "ACTIVE"

            await eventually(lambda: active(sid))
            snap = {"createImage": {"name": "My Snapshot", "metadata": {"purpose": "test"}}}
            assert (await other("POST", f"/servers/{sid}/action", snap))[0] == 404
            assert (await demo("POST", f"/servers/{sid}/action", {"createImage": {}}))[0] == 400
            code, body = await demo.at("2.45")("POST", f"/servers/{sid}/action", snap)
            assert code == 202, body
            image_id = body["image_id"]

            async def uploaded() -> dict[str, Any]:
                code, shown, _ = await glance("GET", f"/images/{image_id}")
                assert code == 200
                return shown if shown["status"] == "active" else {}

            shown = await eventually(uploaded)
            assert (shown["name"], shown["visibility"], shown["size"]) == (
                "My Snapshot",
                "private",
                0,
            )
            assert (shown["instance_uuid"], shown["image_type"], shown["purpose"]) == (
                sid,
                "snapshot",
                "test",
            )
            assert shown["base_image_ref"] == tiny
            async with aiohttp.ClientSession() as http:
                url = f"{base}/compute/v2.1/servers/{sid}/action"
                # (the caller's metadata wins over Nova's properties, as Nova merges them)
                typed = {"createImage": {"name": "typed", "metadata": {"image_type": "test"}}}
                async with http.post(url, json=typed, headers=demo.headers) as resp:  # 2.1
                    assert resp.status == 202 and "/image/v2/images/" in resp.headers["Location"]
                    typed_id = resp.headers["Location"].rsplit("/", 1)[-1]
            _, typed_image, _ = await glance("GET", f"/images/{typed_id}")
            assert typed_image["image_type"] == "test"

            async def logged() -> bool:
                _, body = await demo("GET", f"/servers/{sid}/os-instance-actions")
                return [a["action"] for a in body["instanceActions"]].count("createImage") == 2

            await eventually(logged)
            # a server from the snapshot
            server = {"server": {"name": "vm2", "imageRef": image_id, "flavorRef": "small"}}
            code, body = await demo("POST", "/servers", server)
            assert code == 202, body
            await eventually(lambda: active(body["server"]["id"]))


async def test_create_backup_rotates_older_backups(store: Store, tmp_path: Path) -> None:
    """createBackup: a backup the host uploads as for createImage, and the server's older
    backups of the same type beyond ``rotation`` deleted with their data."""
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    await make_user(store, "hostd", [{"role": "service"}])
    images_dir = tmp_path / "images"
    async with api_cloud(store, sql_url, image_dir=images_dir) as base:
        async with hostd_cloud(store, tmp_path, ImageService(base, "hostd", "hostd-secret")):
            demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
            glance = Glance(base, demo.headers["X-Auth-Token"])
            tiny = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
            server = {"server": {"name": "vm", "imageRef": tiny, "flavorRef": "small"}}
            code, body = await demo("POST", "/servers", server)
            sid = body["server"]["id"]

            async def active() -> bool:
                return await demo.status_of(sid) == "ACTIVE"

            await eventually(active)
            missing = {"createBackup": {"name": "b", "backup_type": "daily"}}
            code, body = await demo("POST", f"/servers/{sid}/action", missing)
            assert code == 400 and "'rotation' is a required property" in str(body)

            async def backup(name: str, backup_type: str, rotation: int) -> str:
                asked = {"name": name, "backup_type": backup_type, "rotation": rotation}
                code, body = await demo.at("2.45")(
                    "POST", f"/servers/{sid}/action", {"createBackup": asked}
                )
                assert code == 202, body
                image_id = str(body["image_id"])

                async def uploaded() -> bool:
                    _, shown, _ = await glance("GET", f"/images/{image_id}")
                    return bool(shown["status"] == "active")

                await eventually(uploaded)
                return image_id

            first = await backup("b1", "daily", 2)
            weekly = await backup("w1", "weekly", 1)
            second = await backup("b2", "daily", 2)
            assert (images_dir / first).exists()
            third = await backup("b3", "daily", 2)
            _, listed, _ = await glance("GET", "/images")
            daily = {i["id"] for i in listed["images"] if i.get("backup_type") == "daily"}
            assert daily == {second, third}
            assert not (images_dir / first).exists()
            _, shown, _ = await glance("GET", f"/images/{weekly}")
            assert (shown["image_type"], shown["backup_type"]) == ("backup", "weekly")

            async def logged() -> bool:
                _, body = await demo("GET", f"/servers/{sid}/os-instance-actions")
                return [a["action"] for a in body["instanceActions"]].count("createBackup") == 4

            await eventually(logged)
            # at 2.1: the image's Location in the Compute API; none when rotation is 0
            async with aiohttp.ClientSession() as http:
                url = f"{base}/compute/v2.1/servers/{sid}/action"
                asked = {"createBackup": {"name": "w2", "backup_type": "weekly", "rotation": "1"}}
                async with http.post(url, json=asked, headers=demo.headers) as resp:
                    assert resp.status == 202
                    assert "/compute/v2.1/images/" in resp.headers["Location"]


def _sdk_round_trip(base: str, data: bytes) -> bool:
    conn = openstack.connect(
        auth_url=f"{base}/identity",
        username="demo",
        password="demo-secret",
        project_name="demo",
        user_domain_name="Default",
        project_domain_name="Default",
    )
    try:
        image = conn.image.create_image(
            name="sdk-image", data=data, disk_format="raw", container_format="bare"
        )
        fetched = conn.image.download_image(image)
        conn.image.delete_image(image)
        return bool(fetched.content == data)
    finally:
        conn.close()


async def test_uploads_past_the_size_cap_or_the_project_s_quota_are_413(
    store: Store, tmp_path: Path
) -> None:
    images_dir = tmp_path / "images"
    limits = ImageLimits(size_cap=3 * 2**20, storage_quota=5 * 2**20)
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with api_cloud(store, sql_url, image_dir=images_dir, image_limits=limits) as base:
        demo = Glance(base, await token_of(base, "demo", "demo-secret", "demo"))
        other = Glance(base, await token_of(base, "other", "other-secret", "other"))

        async def image(glance: Glance) -> str:
            create = {"name": "i", "disk_format": "raw", "container_format": "bare"}
            code, made, _ = await glance("POST", "/images", create)
            assert code == 201, made
            return str(made["id"])

        big = await image(demo)
        code, body, _ = await demo("PUT", f"/images/{big}/file", data=b"x" * (4 * 2**20))
        assert code == 413 and b"size cap" in body, body
        assert not any(images_dir.iterdir())  # nothing of it kept
        first = await image(demo)
        assert (await demo("PUT", f"/images/{first}/file", data=b"x" * (3 * 2**20)))[0] == 204
        second = await image(demo)  # 2 MiB of the quota left: 2.5 MiB is too much
        code, body, _ = await demo("PUT", f"/images/{second}/file", data=b"x" * (5 * 2**19))
        assert code == 413 and b"2097152 bytes remaining" in body, body
        assert (await demo("PUT", f"/images/{second}/file", data=b"x" * 2**20))[0] == 204
        # another project's quota is its own
        theirs = await image(other)
        assert (await other("PUT", f"/images/{theirs}/file", data=b"x" * (3 * 2**20)))[0] == 204
        stored = sorted(p.stat().st_size for p in images_dir.iterdir())
        assert stored == [2**20, 3 * 2**20, 3 * 2**20]
        assert all(p.stat().st_mode & 0o077 == 0 for p in images_dir.iterdir())
