"""Compute API servers end to end on a simulated host: create, actions with their states, delete.

The API server (identity and Compute), the scheduler and a simulated hostd
run against a real etcd; requests carry real keystoneauth1 tokens.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import aiohttp

from state import quota
from state.envelope import Ref
from state.errors import Conflict, NotFound
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_hostd import flavor_and_image
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture


async def object_name_of(store: Store, created: dict[str, Any]) -> str:
    """The Instance name of a server the Compute API created."""
    uid = created["server"]["id"]
    (inst,) = [
        i for i in (await store.list("Instance", "demo")).items if i["metadata"]["uid"] == uid
    ]
    return str(inst["metadata"]["name"])


class Nova:
    """Requests of the Compute API at one microversion (2.1 unless told)."""

    def __init__(self, base: str, token: str, version: str = "2.1") -> None:
        self.base = f"{base}/compute/v2.1"
        self.headers = {"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"}

    def at(self, version: str) -> Nova:
        """The same caller at another microversion."""
        return Nova(self.base.removesuffix("/compute/v2.1"), self.headers["X-Auth-Token"], version)

    async def __call__(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.base + path, json=body, headers=self.headers) as resp,
        ):
            text = await resp.text()
            return resp.status, (await resp.json()) if text else {}

    async def status_of(self, sid: str) -> str:
        code, body = await self("GET", f"/servers/{sid}")
        assert code == 200, body
        return str(body["server"]["status"])


async def test_servers_through_the_compute_api(
    cloud: str,  # noqa: F811
    store: Store,
    tmp_path: Path,
) -> None:
    async with hostd_cloud(store, tmp_path):
        await store.create(
            {
                "kind": "Flavor",
                "metadata": {"name": "large"},
                "spec": {"vcpus": 2, "ramMiB": 512, "diskGiB": 2},
            }
        )
        nova = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        _, flavors = await nova("GET", "/flavors/detail")
        ids = {f["name"]: f["id"] for f in flavors["flavors"]}
        request = {
            "server": {
                "name": "vm1",
                "imageRef": image_id,
                "flavorRef": ids["small"],
                "min_count": 1,
                "max_count": 1,
                "networks": [],
                "block_device_mapping_v2": [
                    {
                        "uuid": image_id,
                        "boot_index": 0,
                        "source_type": "image",
                        "destination_type": "local",
                        "delete_on_termination": True,
                    }
                ],
            }
        }
        code, body = await nova("POST", "/servers", request)
        assert code == 202 and body["server"]["adminPass"], body
        sid = body["server"]["id"]
        code, shown = await nova("GET", f"/servers/{sid}")  # read your write
        assert code == 200 and shown["server"]["name"] == "vm1"

        async def becomes(status: str) -> bool:
            return await nova.status_of(sid) == status

        await eventually(lambda: becomes("ACTIVE"))
        _, shown = await nova("GET", f"/servers/{sid}")
        server = shown["server"]
        assert server["image"]["id"] == image_id and server["flavor"]["id"] == ids["small"]
        assert (server["OS-EXT-STS:vm_state"], server["OS-EXT-STS:power_state"]) == ("active", 1)
        assert "OS-EXT-SRV-ATTR:host" not in server  # admins only
        for act, status in (
            ("os-stop", "SHUTOFF"),
            ("os-start", "ACTIVE"),
            ("pause", "PAUSED"),
            ("unpause", "ACTIVE"),
            ("suspend", "SUSPENDED"),
            ("resume", "ACTIVE"),
        ):
            code, body = await nova("POST", f"/servers/{sid}/action", {act: None})
            assert code == 202, (act, body)
            await eventually(lambda s=status: becomes(s))  # type: ignore[misc]
        code, body = await nova("POST", f"/servers/{sid}/action", {"os-start": None})
        assert code == 409 and "conflictingRequest" in body
        code, _ = await nova("POST", f"/servers/{sid}/action", {"reboot": {"type": "HARD"}})
        assert code == 202
        await eventually(lambda: becomes("ACTIVE"))
        code, _ = await nova(
            "POST", f"/servers/{sid}/action", {"resize": {"flavorRef": ids["large"]}}
        )
        assert code == 202
        await eventually(lambda: becomes("VERIFY_RESIZE"))
        code, _ = await nova("POST", f"/servers/{sid}/action", {"confirmResize": None})
        assert code == 204
        await eventually(lambda: becomes("ACTIVE"))
        _, shown = await nova("GET", f"/servers/{sid}")
        assert shown["server"]["flavor"]["id"] == ids["large"]

        # metadata: merge, replace, one item
        code, body = await nova("POST", f"/servers/{sid}/metadata", {"metadata": {"a": "1"}})
        assert (code, body) == (200, {"metadata": {"a": "1"}})
        code, body = await nova("PUT", f"/servers/{sid}/metadata/b", {"meta": {"b": "2"}})
        assert (code, body) == (200, {"meta": {"b": "2"}})
        code, body = await nova("GET", f"/servers/{sid}/metadata")
        assert body == {"metadata": {"a": "1", "b": "2"}}
        code, _ = await nova("DELETE", f"/servers/{sid}/metadata/a")
        assert code == 204
        code, body = await nova("PUT", f"/servers/{sid}/metadata", {"metadata": {"c": "3"}})
        assert body == {"metadata": {"c": "3"}}
        code, body = await nova("GET", f"/servers/{sid}/metadata/a")
        assert code == 404 and "itemNotFound" in body
        code, body = await nova("PUT", f"/servers/{sid}/metadata/x", {"meta": {"y": "1"}})
        assert code == 400
        too_many = {"metadata": {str(i): "v" for i in range(129)}}
        code, body = await nova("PUT", f"/servers/{sid}/metadata", too_many)
        assert code == 403
        _, shown = await nova("GET", f"/servers/{sid}")
        assert shown["server"]["metadata"] == {"c": "3"}

        # lists, and what another project sees
        _, listed = await nova("GET", "/servers")
        assert [s["id"] for s in listed["servers"]] == [sid]
        _, detail = await nova("GET", "/servers/detail?name=vm")
        assert [s["status"] for s in detail["servers"]] == ["ACTIVE"]
        other = Nova(cloud, await token_of(cloud, "other", "other-secret", "other"))
        _, theirs = await other("GET", "/servers")
        assert theirs["servers"] == []
        code, _ = await other("GET", f"/servers/{sid}")
        assert code == 404
        code, _ = await other("POST", f"/servers/{sid}/action", {"os-stop": None})
        assert code == 404
        code, body = await other("GET", "/servers?all_tenants=1")
        assert code == 403 and "get_all_tenants" in body["forbidden"]["message"]
        # an admin sees it among all projects' servers, and may show it
        admin = Nova(cloud, await token_of(cloud, "admin", "admin-secret", "admin"))
        _, own = await admin("GET", "/servers")
        assert own["servers"] == []
        _, every = await admin("GET", "/servers/detail?all_tenants=1")
        assert [s["id"] for s in every["servers"]] == [sid]
        code, body = await admin("GET", f"/servers/{sid}")
        assert code == 200 and body["server"]["tenant_id"] == shown["server"]["tenant_id"]

        # bad requests change nothing
        bad = dict(request["server"], name="vm2", flavorRef="nope")
        code, body = await nova("POST", "/servers", {"server": bad})
        assert code == 400 and body["badRequest"]["message"] == "Flavor nope could not be found."
        bad = dict(request["server"], name="vm2", imageRef="nope", block_device_mapping_v2=[])
        code, body = await nova("POST", "/servers", {"server": bad})
        assert code == 400 and "Image nope" in body["badRequest"]["message"]
        code, body = await nova("POST", "/servers", {"server": {"imageRef": image_id}})
        assert code == 400
        code, body = await nova("POST", "/servers", {"server": dict(request["server"], name=" x")})
        assert code == 400
        assert [i["spec"]["displayName"] for i in (await store.list("Instance", "demo")).items] == [
            "vm1"
        ]
        # names are free text and need not be unique, as Nova's
        named = dict(request["server"], name="Web Server #1")
        twins = [await nova("POST", "/servers", {"server": named}) for _ in range(2)]
        assert [code for code, _ in twins] == [202, 202]
        for _, body in twins:
            code, shown_twin = await nova("GET", f"/servers/{body['server']['id']}")
            assert shown_twin["server"]["name"] == "Web Server #1"
        _, listed = await nova("GET", "/servers?name=Web Server")
        assert sorted(s["id"] for s in listed["servers"]) == sorted(
            b["server"]["id"] for _, b in twins
        )
        twin = await store.get(Ref("Instance", "demo", (await object_name_of(store, twins[0][1]))))
        assert twin["metadata"]["name"].startswith("web-server-1-")
        assert twin["spec"]["hostname"] == "web-server-1"
        for _, body in twins:
            assert (await nova("DELETE", f"/servers/{body['server']['id']}"))[0] == 204

        code, _ = await nova("DELETE", f"/servers/{sid}")
        assert code == 204
        deadline = time.monotonic() + 10
        while (await nova("GET", f"/servers/{sid}"))[0] != 404:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)


async def test_deletes_win_against_writers_racing_them(
    cloud: str,  # noqa: F811
    store: Store,
) -> None:
    """Every delete answers 204 and gives its quota back while other writers keep changing
    the same servers (status as hostd writes it, specs and finalizers as reconcilers do)
    and the project's usage; none answers 409."""
    await flavor_and_image(store)
    nova = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
    _, flavors = await nova("GET", "/flavors/detail")
    (flavor_id,) = [f["id"] for f in flavors["flavors"] if f["name"] == "small"]
    n = 10
    code, body = await nova(
        "POST",
        "/servers",
        {
            "server": {
                "name": "racer",
                "imageRef": image_id,
                "flavorRef": flavor_id,
                "networks": [],
                "min_count": n,
                "max_count": n,
            }
        },
    )
    assert code == 202, body
    instances = (await store.list("Instance", "demo")).items
    assert len(instances) == n
    refs = [Ref("Instance", "demo", i["metadata"]["name"]) for i in instances]
    uids = [i["metadata"]["uid"] for i in instances]
    assert (await quota.usage(store, "demo"))[0]["instances"] == n
    done = asyncio.Event()

    async def status_writer(r: Ref) -> None:
        count = 0
        while not done.is_set():
            count += 1

            def mutate(status: dict[str, Any], count: int = count) -> bool:
                status["heartbeat"] = count
                return True

            await store.patch_status(r, mutate)
            await asyncio.sleep(random.uniform(0, 0.005))

    async def spec_writer(r: Ref) -> None:
        count = 0
        while not done.is_set():
            count += 1
            try:
                obj = await store.get(r)
                if obj["metadata"].get("deletionTimestamp"):
                    return
                obj["metadata"].setdefault("labels", {})["churn"] = str(count)
                await store.update(obj)
            except (Conflict, NotFound):
                pass
            await asyncio.sleep(random.uniform(0, 0.005))

    async def usage_writer() -> None:
        while not done.is_set():
            guard, put, _ = await quota.charge(store, "demo", {"instances": 0})
            await store.etcd.txn([guard], [put])
            await asyncio.sleep(random.uniform(0, 0.005))

    writers = [
        *(asyncio.create_task(status_writer(r)) for r in refs),
        *(asyncio.create_task(spec_writer(r)) for r in refs),
        *(asyncio.create_task(usage_writer()) for _ in range(2)),
    ]
    try:
        await asyncio.sleep(0.2)  # the writers are at it
        answers = await asyncio.gather(*(nova("DELETE", f"/servers/{uid}") for uid in uids))
    finally:
        done.set()
        await asyncio.gather(*writers)
    assert [code for code, _ in answers] == [204] * n, answers
    for r in refs:  # deleting: gone once their finalizers' owners (not running here) let go
        deleting = await store.get_or_none(r)
        assert deleting is None or deleting["metadata"]["deletionTimestamp"]
    used, _ = await quota.usage(store, "demo")
    assert (used["instances"], used["cores"], used["ram"]) == (0, 0, 0), used
