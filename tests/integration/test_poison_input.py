"""Poison input through every API: refused at admission in the API's own format, nothing stored.

Lone surrogates (sent as JSON escapes), NUL bytes, unprintable names, bodies
nested 200,000 deep, too many metadata items and unparsable availability
zones, each against the API server, the conductor projecting into SQL and a
simulated host. Afterwards the conductor still projects and a plain server
still becomes ACTIVE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import yarl

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture

POISON = ["fz\ud800x", "nul\x00byte", "\udfff"]


async def _raw(base: str, method: str, path: str, body: bytes, **headers: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, base + path, data=body, headers=headers) as resp,
    ):
        text = await resp.text()
        return resp.status, text


async def _server_ready(nova: Nova, good: dict[str, Any]) -> dict[str, Any]:
    code, made = await nova("POST", "/servers", {"server": {**good, "name": "plain"}})
    assert code == 202, made
    sid = made["server"]["id"]

    async def active() -> bool:
        return await nova.status_of(sid) == "ACTIVE"

    await eventually(active, timeout=30)
    return dict(made["server"])


async def test_poison_is_refused_by_every_api_and_the_cloud_goes_on(
    cloud: str,  # noqa: F811
    store: Store,
    tmp_path: Path,
) -> None:
    async with hostd_cloud(store, tmp_path):
        token = await token_of(cloud, "demo", "demo-secret", "demo")
        nova = Nova(cloud, token, "2.47")
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        _, flavors = await nova("GET", "/flavors")
        (flavor_id,) = [f["id"] for f in flavors["flavors"] if f["name"] == "small"]
        good = {"imageRef": image_id, "flavorRef": flavor_id, "networks": "none"}
        server = await _server_ready(nova, good)
        sid = server["id"]
        before = {i["metadata"]["name"] for i in (await store.list("Instance", "demo")).items}

        for bad in POISON:
            code, body = await nova("POST", "/servers", {"server": {**good, "name": bad}})
            assert code == 400, body
            code, body = await nova(
                "POST", "/servers", {"server": {**good, "name": "m", "metadata": {"k": bad}}}
            )
            assert code == 400 and "badRequest" in body, body
            code, body = await nova("PUT", f"/servers/{sid}/tags", {"tags": [f"t{bad}"]})
            assert code == 400, body
            code, body = await nova("PUT", f"/servers/{sid}/metadata/k", {"meta": {"k": bad}})
            assert code == 400, body
            code, body = await nova("PUT", f"/servers/{sid}", {"server": {"name": bad}})
            assert code == 400, body
            code, body = await nova(
                "POST", "/os-keypairs", {"keypair": {"name": bad, "public_key": "ssh-rsa AAAA"}}
            )
            assert code == 400, body
        # a tag in the URL: NUL percent-encoded
        code, body = await nova("PUT", f"/servers/{sid}/tags/t%00x")
        assert code == 400, body
        # Nova's words for an unprintable name
        code, body = await nova("POST", "/servers", {"server": {**good, "name": "bell\x07"}})
        assert code == 400 and body["badRequest"]["message"].startswith(
            "An invalid 'name' value was provided."
        )
        # metadata items are counted at create as on a change
        many = {f"k{i}": "v" for i in range(200)}
        code, body = await nova(
            "POST", "/servers", {"server": {**good, "name": "m", "metadata": many}}
        )
        assert (code, body["forbidden"]["message"]) == (
            403,
            "Maximum number of metadata items exceeds 128",
        )
        # availability zones as Nova parses them; a member cannot force a host
        for zone, want in (("nova:vm", 403), ("::::", 400), ("nowhere", 400)):
            code, body = await nova(
                "POST", "/servers", {"server": {**good, "name": "z", "availability_zone": zone}}
            )
            assert code == want, (zone, body)
        # bodies nested deeper than any API needs, on every API
        deep = b"[" * 200_000
        for path in (
            "/compute/v2.1/servers",
            "/network/v2.0/networks",
            "/image/v2/images",
            "/identity/v3/auth/tokens",
        ):
            code, text = await _raw(
                cloud,
                "POST",
                path,
                deep,
                **{"X-Auth-Token": token, "Content-Type": "application/json"},
            )
            assert code == 400, (path, code, text)
        code, text = await _raw(
            cloud,
            "POST",
            "/apis/v1/apply",
            deep,
            Authorization="Bearer bootstrap-token",
            **{"Content-Type": "application/json"},
        )
        assert code == 400, text

        # nothing was stored: the same servers as before, the plain one without tags
        after = {i["metadata"]["name"] for i in (await store.list("Instance", "demo")).items}
        assert after == before
        code, tags = await nova("GET", f"/servers/{sid}/tags")
        assert (code, tags) == (200, {"tags": []})
        # and the conductor still projects: a second plain server is listed and ACTIVE
        again = await _server_ready(nova, good)
        code, listed = await nova("GET", "/servers")
        assert {s["id"] for s in listed["servers"]} == {sid, again["id"]}


async def test_other_apis_refuse_poison_in_their_formats(
    cloud: str,  # noqa: F811
    store: Store,
) -> None:
    token = await token_of(cloud, "demo", "demo-secret", "demo")
    headers = {"X-Auth-Token": token}
    async with aiohttp.ClientSession(base_url=cloud) as http:
        for bad in POISON:
            async with http.post(
                "/network/v2.0/networks", json={"network": {"name": bad}}, headers=headers
            ) as resp:
                body = await resp.json()
                assert resp.status == 400 and "NeutronError" in body, body
            async with http.post(
                "/image/v2/images",
                json={"name": bad, "disk_format": "raw", "container_format": "bare"},
                headers=headers,
            ) as resp:
                assert resp.status == 400, await resp.text()
            async with http.post(
                "/apis/v1/apply",
                json={
                    "kind": "Flavor",
                    "metadata": {"name": "f", "annotations": {"note": bad}},
                    "spec": {"vcpus": 1, "ramMiB": 64, "diskGiB": 1, "displayName": bad},
                },
                headers={"Authorization": "Bearer bootstrap-token"},
            ) as resp:
                body = await resp.json()
                assert resp.status == 422, body
                fields = {c["field"] for c in body["details"]["causes"]}
                assert {"metadata.annotations.note", "spec.displayName"} <= fields
            async with http.post(
                "/identity/v3/auth/tokens",
                json={
                    "auth": {
                        "identity": {
                            "methods": ["password"],
                            "password": {
                                "user": {"name": bad, "domain": {"id": "default"}, "password": bad}
                            },
                        }
                    }
                },
            ) as resp:
                assert resp.status == 401, await resp.text()
        # poison in the path: invalid UTF-8, a lone surrogate's bytes, NUL
        for junk in ("%ED%A0%80", "%00", "%FF%FE", "a%00b"):
            for path in (
                f"/apis/v1/flavors/{junk}",
                f"/apis/v1/projects/demo/instances/{junk}",
                f"/compute/v2.1/servers/{junk}",
                f"/compute/v2.1/flavors/{junk}",
                f"/compute/v2.1/os-keypairs/{junk}",
                f"/network/v2.0/networks/{junk}",
                f"/image/v2/images/{junk}",
            ):
                auth = {**headers, "Authorization": "Bearer bootstrap-token"}
                async with http.get(yarl.URL(path, encoded=True), headers=auth) as resp:
                    assert 400 <= resp.status < 500, (path, resp.status, await resp.text())
    assert await store.get_or_none(Ref("Flavor", None, "f")) is None
    networks = (await store.list("Network", "demo")).items
    assert all("\x00" not in str(n["spec"]) for n in networks)
