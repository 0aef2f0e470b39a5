"""The declarative API on loopback over a real etcd: apply, list, watch, delete, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from apiserver.app import make_app
from state import ipam
from state.envelope import Ref
from state.etcd import EtcdClient
from state.store import Store
from tests.conftest import serving

TOKEN = "test-admin-token"


@pytest.fixture
async def api(etcd: EtcdClient) -> AsyncIterator[aiohttp.ClientSession]:
    async with (
        serving(make_app(EtcdClient(etcd.url, credentials=etcd.credentials), TOKEN)) as base,
        aiohttp.ClientSession(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as session,
    ):
        yield session


FLAVOR = {
    "apiVersion": "desired/v1",
    "kind": "Flavor",
    "metadata": {"name": "m1.tiny", "labels": {"app": "demo"}},
    "spec": {"vcpus": 1, "ramMiB": 512, "diskGiB": 1},
}

KEYPAIR = {
    "apiVersion": "desired/v1",
    "kind": "KeyPair",
    "metadata": {"name": "mykey", "project": "demo"},
    "spec": {"publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1 user@host"},
}


async def _apply(api: aiohttp.ClientSession, obj: dict, **params: str) -> tuple[int, dict]:
    async with api.post("/apis/v1/apply", json=obj, params=params) as resp:
        return resp.status, await resp.json()


async def test_anonymous_calls_are_refused(api: aiohttp.ClientSession) -> None:
    async with api.get("/apis/v1/flavors", headers={"Authorization": ""}) as resp:
        assert resp.status == 401
        body = await resp.json()
        assert body["kind"] == "Status" and body["reason"] == "Unauthorized"
    async with api.get("/apis/v1/flavors", headers={"Authorization": "Bearer wrong"}) as resp:
        assert resp.status == 401


async def test_discovery_lists_kinds(api: aiohttp.ClientSession) -> None:
    async with api.get("/apis/v1/") as resp:
        body = await resp.json()
    kinds = {r["kind"]: r for r in body["resources"]}
    assert kinds["Instance"] == {"kind": "Instance", "plural": "instances", "scope": "project"}
    assert kinds["Flavor"]["scope"] == "cluster"


async def test_apply_creates_then_is_unchanged_then_configures(api: aiohttp.ClientSession) -> None:
    status, body = await _apply(api, FLAVOR)
    assert (status, body["outcome"]) == (201, "created")
    rv = body["object"]["metadata"]["resourceVersion"]
    status, body = await _apply(api, FLAVOR)
    assert (status, body["outcome"]) == (200, "unchanged")
    assert body["object"]["metadata"]["resourceVersion"] == rv
    bigger = json.loads(json.dumps(FLAVOR))
    bigger["spec"]["vcpus"] = 2
    status, body = await _apply(api, bigger)
    assert (status, body["outcome"]) == (200, "configured")
    assert body["object"]["metadata"]["generation"] == 2
    async with api.get("/apis/v1/flavors/m1.tiny") as resp:
        got = await resp.json()
    assert got["spec"]["vcpus"] == 2


async def test_apply_prunes_removed_fields_but_keeps_others(api: aiohttp.ClientSession) -> None:
    with_extra = json.loads(json.dumps(FLAVOR))
    with_extra["spec"]["extraSpecs"] = {"hw:cpu_policy": "dedicated"}
    await _apply(api, with_extra)
    # someone else sets a field through a replace
    async with api.get("/apis/v1/flavors/m1.tiny") as resp:
        live = await resp.json()
    live["spec"]["description"] = "set by another writer"
    async with api.put("/apis/v1/flavors/m1.tiny", json=live) as resp:
        assert resp.status == 200, await resp.text()
    # the user drops extraSpecs from their file
    _status, body = await _apply(api, FLAVOR)
    assert body["outcome"] == "configured"
    spec = body["object"]["spec"]
    assert "extraSpecs" not in spec
    assert spec["description"] == "set by another writer"


async def test_dry_run_writes_nothing(api: aiohttp.ClientSession) -> None:
    status, body = await _apply(api, FLAVOR, dryRun="true")
    assert (status, body["outcome"]) == (200, "created")
    async with api.get("/apis/v1/flavors/m1.tiny") as resp:
        assert resp.status == 404


async def test_schema_violation_is_422_with_field_path(api: aiohttp.ClientSession) -> None:
    bad = json.loads(json.dumps(FLAVOR))
    bad["spec"]["vcpus"] = "many"
    status, body = await _apply(api, bad)
    assert status == 422
    assert body["reason"] == "Invalid"
    assert any(c["field"] == "spec.vcpus" for c in body["details"]["causes"])
    async with api.get("/apis/v1/flavors/m1.tiny") as resp:
        assert resp.status == 404


async def test_unknown_kind_lists_known_ones(api: aiohttp.ClientSession) -> None:
    status, body = await _apply(api, dict(FLAVOR, kind="Flavour"))
    assert status == 400
    assert "Flavor" in body["message"] and "Instance" in body["message"]
    async with api.get("/apis/v1/flavours") as resp:
        assert resp.status == 400
        assert "flavors" in (await resp.json())["message"]


async def test_unknown_api_version_names_the_known_one(api: aiohttp.ClientSession) -> None:
    status, body = await _apply(api, dict(FLAVOR, apiVersion="desired/v2"))
    assert status == 400
    assert body["message"] == "unknown apiVersion 'desired/v2'; known: desired/v1"


async def test_scope_rules(api: aiohttp.ClientSession) -> None:
    no_project = json.loads(json.dumps(KEYPAIR))
    del no_project["metadata"]["project"]
    status, body = await _apply(api, no_project)
    assert status == 400 and "project-scoped" in body["message"]
    status, _ = await _apply(api, KEYPAIR)
    assert status == 201
    async with api.get("/apis/v1/projects/demo/keypairs/mykey") as resp:
        assert resp.status == 200
    async with api.get("/apis/v1/projects/other/keypairs/mykey") as resp:
        assert resp.status == 404


async def test_stale_resource_version_is_409(api: aiohttp.ClientSession) -> None:
    _, body = await _apply(api, FLAVOR)
    obj = body["object"]
    obj["spec"]["vcpus"] = 3
    async with api.put("/apis/v1/flavors/m1.tiny", json=obj) as resp:
        assert resp.status == 200
    obj["spec"]["vcpus"] = 4
    async with api.put("/apis/v1/flavors/m1.tiny", json=obj) as resp:
        assert resp.status == 409
        assert (await resp.json())["reason"] == "Conflict"


async def test_malformed_bodies_are_400(api: aiohttp.ClientSession) -> None:
    async with api.post(
        "/apis/v1/apply", data=b"{not json", headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        assert "JSON" in (await resp.json())["message"]
    async with api.post("/apis/v1/apply", json=[1, 2]) as resp:
        assert resp.status == 400


async def test_list_with_selector_and_paging(api: aiohttp.ClientSession) -> None:
    for i in range(7):
        obj = json.loads(json.dumps(FLAVOR))
        obj["metadata"] = {"name": f"f{i}", "labels": {"parity": "odd" if i % 2 else "even"}}
        await _apply(api, obj)
    async with api.get("/apis/v1/flavors", params={"labelSelector": "parity=odd"}) as resp:
        body = await resp.json()
    assert [o["metadata"]["name"] for o in body["items"]] == ["f1", "f3", "f5"]
    names: list[str] = []
    params = {"limit": "3"}
    while True:
        async with api.get("/apis/v1/flavors", params=params) as resp:
            page = await resp.json()
        names += [o["metadata"]["name"] for o in page["items"]]
        if "continue" not in page["metadata"]:
            break
        params = {"limit": "3", "continue": page["metadata"]["continue"]}
    assert names == [f"f{i}" for i in range(7)]


async def test_watch_streams_events_from_a_revision(api: aiohttp.ClientSession) -> None:
    _, body = await _apply(api, FLAVOR)
    rv = body["object"]["metadata"]["resourceVersion"]
    async with api.get("/apis/v1/flavors", params={"watch": "true", "resourceVersion": rv}) as resp:
        assert resp.status == 200
        other = json.loads(json.dumps(FLAVOR))
        other["metadata"]["name"] = "m1.small"
        await _apply(api, other)
        async with api.delete("/apis/v1/flavors/m1.tiny") as d:
            assert d.status == 200
        events = []
        while len(events) < 2:
            line = await asyncio.wait_for(resp.content.readline(), 5)
            ev = json.loads(line)
            if ev["type"] != "BOOKMARK":
                events.append((ev["type"], ev["object"]["metadata"]["name"]))
    assert events == [("ADDED", "m1.small"), ("DELETED", "m1.tiny")]


async def test_watch_from_compacted_revision_is_410(
    api: aiohttp.ClientSession, etcd: EtcdClient
) -> None:
    _, body = await _apply(api, FLAVOR)
    rv = body["object"]["metadata"]["resourceVersion"]
    await _apply(api, dict(FLAVOR, metadata={"name": "b"}))
    await etcd.compact(await etcd.revision())
    async with api.get("/apis/v1/flavors", params={"watch": "1", "resourceVersion": rv}) as resp:
        assert resp.status == 410


async def test_a_resource_version_that_is_no_revision_is_400(
    api: aiohttp.ClientSession,
) -> None:
    for rv in ("99999999999999999999", str(2**63), "-1", "abc", "1_000", " 7", "\u0661"):
        for method, path, watch in (
            ("GET", "/apis/v1/flavors", {"watch": "true"}),
            ("DELETE", "/apis/v1/flavors/m1.tiny", {}),
        ):
            params = {**watch, "resourceVersion": rv}
            async with api.request(method, path, params=params) as resp:
                assert resp.status == 400, (method, rv, resp.status)
                body = await resp.json()
                assert body["reason"] == "BadRequest", body
                assert "resourceVersion must be a revision" in body["message"], body
    # a revision the store has not reached yet is no revision a read returned
    async with api.get(
        "/apis/v1/flavors", params={"watch": "true", "resourceVersion": str(2**63 - 1)}
    ) as resp:
        assert resp.status == 400
        assert "is ahead of the store" in (await resp.json())["message"]


async def test_a_key_given_twice_in_a_body_is_refused(api: aiohttp.ClientSession) -> None:
    yaml_body = (
        "kind: Flavor\nmetadata: {name: twice}\nspec:\n  vcpus: 1\n  vcpus: 8\n"
        "  ramMiB: 512\n  diskGiB: 1\n"
    )
    json_body = (
        '{"kind": "Flavor", "metadata": {"name": "twice"}, '
        '"spec": {"vcpus": 1, "vcpus": 8, "ramMiB": 512, "diskGiB": 1}}'
    )
    for body, content_type in ((yaml_body, "application/yaml"), (json_body, "application/json")):
        async with api.post(
            "/apis/v1/apply", data=body, headers={"Content-Type": content_type}
        ) as resp:
            assert resp.status == 400, content_type
            message = (await resp.json())["message"]
            assert "duplicate key 'vcpus'" in message, message
    async with api.get("/apis/v1/flavors/twice") as resp:
        assert resp.status == 404


async def test_etcd_unreachable_is_503(etcd_server: object) -> None:
    from fixtures.ports import free_port

    app = make_app(EtcdClient(f"http://127.0.0.1:{free_port()}", timeout=1), TOKEN)
    async with (
        serving(app) as base,
        aiohttp.ClientSession() as s,
        s.post(
            f"{base}/apis/v1/apply", json=FLAVOR, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as resp,
    ):
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert "retry later" in (await resp.json())["message"]


def _network(name: str, cidr: str) -> dict:
    return {
        "apiVersion": "desired/v1",
        "kind": "Network",
        "metadata": {"name": name, "project": "demo"},
        "spec": {"cidr": cidr},
    }


async def test_networks_that_overlap_or_are_in_use_are_refused(
    api: aiohttp.ClientSession, etcd: EtcdClient
) -> None:
    assert (await _apply(api, _network("a", "10.40.0.0/24")))[0] == 201
    code, body = await _apply(api, _network("b", "10.40.0.128/25"))
    assert code == 422 and body["reason"] == "Invalid", body
    assert "spec.cidr: 10.40.0.128/25 overlaps 10.40.0.0/24 of network a" in body["message"]
    async with api.post(
        "/apis/v1/projects/demo/networks", json=_network("c", "10.40.0.0/16")
    ) as resp:
        assert resp.status == 422
    assert (await _apply(api, _network("b", "10.41.0.0/24")))[0] == 201
    # another project may use the same addresses
    assert (
        await _apply(
            api, {**_network("a", "10.40.0.0/24"), "metadata": {"name": "a", "project": "other"}}
        )
    )[0] == 201

    # an address held on a network keeps it from being deleted
    store = Store(etcd)
    net = await store.get(Ref("Network", "demo", "a"))
    port = await ipam.allocate(etcd, net, "an-instance-uid", 0)
    async with api.delete("/apis/v1/projects/demo/networks/a") as resp:
        assert resp.status == 409
        assert "in use" in (await resp.json())["message"]
    await ipam.release(etcd, net["metadata"]["uid"], "an-instance-uid")
    async with api.delete("/apis/v1/projects/demo/networks/a") as resp:
        assert resp.status == 200, await resp.text()
    assert port.address.startswith("10.40.0.")
