"""The Compute API's first resources: version documents, microversions, faults, flavors."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from state.envelope import Ref
from state.store import Store
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture


def password_session(base: str, user: str, password: str, project: str) -> ks_session.Session:
    """A keystoneauth1 session of ``user`` scoped to ``project``, as the clients make it."""
    return ks_session.Session(
        auth=v3.Password(
            auth_url=f"{base}/identity",
            username=user,
            password=password,
            user_domain_name="Default",
            project_name=project,
            project_domain_name="Default",
        )
    )


async def token_of(base: str, user: str, password: str, project: str) -> str:
    sess = password_session(base, user, password, project)
    token: str = await asyncio.to_thread(sess.get_token)
    return token


async def call(
    base: str, path: str, token: str = "", **headers: str
) -> tuple[int, dict[str, Any], Any]:
    hdrs = {"X-Auth-Token": token} if token else {}
    hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
    async with aiohttp.ClientSession() as http, http.get(f"{base}{path}", headers=hdrs) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def test_versions_and_microversions(cloud: str) -> None:  # noqa: F811
    status, _, body = await call(cloud, "/compute/")
    assert status == 200
    assert [v["id"] for v in body["versions"]] == ["v2.0", "v2.1"]
    assert (body["versions"][1]["version"], body["versions"][1]["min_version"]) == ("2.47", "2.1")
    status, headers, body = await call(cloud, "/compute/v2.1")
    assert status == 200 and body["version"]["media-types"][0]["type"].endswith("version=2.1")
    assert headers["OpenStack-API-Version"] == "compute 2.1"
    assert headers["x-openstack-request-id"].startswith("req-")
    assert headers["x-compute-request-id"] == headers["x-openstack-request-id"]
    status, _, body = await call(cloud, "/compute/v2/")
    assert status == 200 and body["version"]["id"] == "v2.0"
    token = await token_of(cloud, "demo", "demo-secret", "demo")
    status, headers, _ = await call(
        cloud, "/compute/v2.1/flavors", token, OpenStack_API_Version="compute latest"
    )
    assert (status, headers["X-OpenStack-Nova-API-Version"]) == (200, "2.47")
    status, headers, _ = await call(
        cloud, "/compute/v2.1/flavors", token, X_OpenStack_Nova_API_Version="2.26"
    )
    assert (status, headers["OpenStack-API-Version"]) == (200, "compute 2.26")
    status, headers, body = await call(
        cloud, "/compute/v2.1/flavors", token, X_OpenStack_Nova_API_Version="2.48"
    )
    assert status == 406 and body["computeFault"]["message"].startswith("Version 2.48")
    status, _, body = await call(cloud, "/compute/v2.1/flavors")
    assert status == 401 and body["unauthorized"]["code"] == 401


async def test_flavors_at_2_1(cloud: str, store: Store) -> None:  # noqa: F811
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "m1.tiny"},
            "spec": {"vcpus": 1, "ramMiB": 128, "diskGiB": 1, "extraSpecs": {"hw:cpu": "x"}},
        }
    )
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "secret"},
            "spec": {"vcpus": 2, "ramMiB": 256, "diskGiB": 2, "isPublic": False, "swapMiB": 64},
        }
    )
    demo = await token_of(cloud, "demo", "demo-secret", "demo")
    admin = await token_of(cloud, "admin", "admin-secret", "admin")
    status, _, body = await call(cloud, "/compute/v2.1/flavors", demo)
    assert status == 200 and [f["name"] for f in body["flavors"]] == ["m1.tiny"]
    assert set(body["flavors"][0]) == {"id", "name", "links"}
    _, _, body = await call(cloud, "/compute/v2.1/flavors/detail?is_public=None", admin)
    assert [f["name"] for f in body["flavors"]] == ["m1.tiny", "secret"]
    tiny = body["flavors"][0]
    assert set(tiny) == {
        "id",
        "name",
        "links",
        "ram",
        "vcpus",
        "disk",
        "swap",
        "rxtx_factor",
        "OS-FLV-EXT-DATA:ephemeral",
        "OS-FLV-DISABLED:disabled",
        "os-flavor-access:is_public",
    }
    assert (tiny["ram"], tiny["vcpus"], tiny["disk"], tiny["swap"]) == (128, 1, 1, "")
    assert body["flavors"][1]["swap"] == 64
    for ident in (tiny["id"], "m1.tiny"):
        status, _, one = await call(cloud, f"/compute/v2.1/flavors/{ident}", demo)
        assert status == 200 and one["flavor"] == tiny
    status, _, body = await call(cloud, "/compute/v2.1/flavors/secret", demo)
    assert status == 404 and body["itemNotFound"]["message"] == "Flavor secret could not be found."
    _, _, body = await call(cloud, f"/compute/v2.1/flavors/{tiny['id']}/os-extra_specs", demo)
    assert body == {"extra_specs": {"hw:cpu": "x"}}
    status, _, body = await call(cloud, "/compute/v2.1/no-such-thing", demo)
    assert status == 404 and "itemNotFound" in body


async def test_image_service_reads(cloud: str, store: Store) -> None:  # noqa: F811
    public = await store.create(
        {
            "kind": "Image",
            "metadata": {"name": "tiny"},
            "spec": {"visibility": "public", "diskFormat": "qcow2", "checksum": "a" * 32},
        }
    )
    await store.create(
        {
            "kind": "Image",
            "metadata": {"name": "mine", "project": "other"},
            "spec": {"visibility": "private"},
        }
    )
    token = await token_of(cloud, "demo", "demo-secret", "demo")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{cloud}/image/") as resp:
            assert resp.status == 300
            assert (await resp.json())["versions"][0]["links"][0]["href"].endswith("/image/v2/")
        headers = {"X-Auth-Token": token}
        async with http.get(f"{cloud}/image/v2/images", headers=headers) as resp:
            images = (await resp.json())["images"]
        assert [i["name"] for i in images] == ["tiny"]  # another project's private image is hidden
        assert images[0]["id"] == public["metadata"]["uid"] and images[0]["status"] == "active"
        uid = public["metadata"]["uid"]
        async with http.get(f"{cloud}/image/v2/images?id=in:{uid},x", headers=headers) as resp:
            assert [i["id"] for i in (await resp.json())["images"]] == [uid]
        async with http.get(f"{cloud}/image/v2/images?name=tiny", headers=headers) as resp:
            assert len((await resp.json())["images"]) == 1
        async with http.get(f"{cloud}/image/v2/images/{uid}", headers=headers) as resp:
            assert resp.status == 200 and (await resp.json())["checksum"] == "a" * 32
        async with http.get(f"{cloud}/image/v2/images/tiny", headers=headers) as resp:
            assert resp.status == 404
        async with http.get(f"{cloud}/image/v2/images") as resp:
            assert resp.status == 401


async def test_keypairs_and_zones(cloud: str, store: Store) -> None:  # noqa: F811
    token = await token_of(cloud, "demo", "demo-secret", "demo")
    headers = {"X-Auth-Token": token}
    base = f"{cloud}/compute/v2.1"
    public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 me@desired"
    async with aiohttp.ClientSession() as http:
        body = {"keypair": {"name": "k1", "public_key": public}}
        async with http.post(f"{base}/os-keypairs", json=body, headers=headers) as resp:
            assert resp.status == 200
            made = (await resp.json())["keypair"]
        assert set(made) == {"name", "public_key", "fingerprint", "user_id"}
        assert made["fingerprint"].count(":") == 15
        async with http.post(
            f"{base}/os-keypairs", json={"keypair": {"name": "gen"}}, headers=headers
        ) as resp:
            generated = (await resp.json())["keypair"]
        assert generated["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
        stored = await store.get(Ref("KeyPair", "demo", "gen"))
        assert "PRIVATE" not in str(stored)  # the private half is never kept
        async with http.post(f"{base}/os-keypairs", json=body, headers=headers) as resp:
            assert resp.status == 409 and "conflictingRequest" in await resp.json()
        bad = {"keypair": {"name": "bad", "public_key": "not a key"}}
        async with http.post(f"{base}/os-keypairs", json=bad, headers=headers) as resp:
            assert resp.status == 400
        async with http.get(f"{base}/os-keypairs", headers=headers) as resp:
            names = [k["keypair"]["name"] for k in (await resp.json())["keypairs"]]
        assert names == ["gen", "k1"]
        async with http.get(f"{base}/os-keypairs/k1", headers=headers) as resp:
            shown = (await resp.json())["keypair"]
        assert shown["deleted"] is False and shown["public_key"] == public
        async with http.delete(f"{base}/os-keypairs/k1", headers=headers) as resp:
            assert resp.status == 202
        async with http.get(f"{base}/os-keypairs/k1", headers=headers) as resp:
            assert resp.status == 404
        async with http.get(f"{base}/os-availability-zone", headers=headers) as resp:
            assert (await resp.json()) == {"availabilityZoneInfo": []}  # no hosts here
        async with http.get(f"{base}/os-availability-zone/detail", headers=headers) as resp:
            assert resp.status == 403
