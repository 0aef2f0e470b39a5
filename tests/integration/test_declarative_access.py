"""The declarative API with identity tokens, over a real etcd: who reads and writes what,
watches that carry only the caller's project, and the bootstrap token's rotation and
lifetime."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from apiserver.admin_token import rotate
from apiserver.app import make_app
from apiserver.kinds import KINDS
from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually, serving
from tests.integration.test_identity import make_user

TOKEN = "access-bootstrap-token"
FLAVOR = {
    "apiVersion": "desired/v1",
    "kind": "Flavor",
    "metadata": {"name": "m1.a"},
    "spec": {"vcpus": 1, "ramMiB": 64, "diskGiB": 1},
}


def keypair(name: str, project: str) -> dict[str, Any]:
    return {
        "apiVersion": "desired/v1",
        "kind": "KeyPair",
        "metadata": {"name": name, "project": project},
        "spec": {"publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1 user@host"},
    }


async def cloud(store: Store, **app_args: Any) -> None:
    """Projects demo and other; users demo (member of demo), viewer (reader of demo),
    other (member of other) and boss (admin), each with password ``<name>-secret``."""
    for name in ("demo", "other"):
        await store.create({"kind": "Project", "metadata": {"name": name}, "spec": {}})
    await make_user(store, "demo", [{"role": "member", "project": "demo"}])
    await make_user(store, "viewer", [{"role": "reader", "project": "demo"}])
    await make_user(store, "other", [{"role": "member", "project": "other"}])
    await make_user(store, "boss", [{"role": "admin"}])


@pytest.fixture
async def base(store: Store) -> AsyncIterator[str]:
    await cloud(store)
    async with serving(make_app(store.etcd, TOKEN)) as url:
        yield url


async def login(base: str, user: str, project: str | None) -> str:
    scope: dict[str, Any] = (
        {"project": {"name": project, "domain": {"id": "default"}}}
        if project
        else {"system": {"all": True}}
    )
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": user,
                        "domain": {"id": "default"},
                        "password": f"{user}-secret",
                    }
                },
            },
            "scope": scope,
        }
    }
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{base}/identity/v3/auth/tokens", json=body) as resp,
    ):
        assert resp.status == 201, await resp.text()
        return resp.headers["X-Subject-Token"]


async def call(
    base: str, token: str, method: str, path: str, body: Any = None, bearer: bool = False
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if bearer else {"X-Auth-Token": token}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, base + path, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


def forbidden(status: int, body: dict[str, Any]) -> str:
    assert status == 403, body
    assert body["kind"] == "Status" and body["reason"] == "Forbidden", body
    return str(body["message"])


async def test_a_member_reads_and_writes_its_own_project_only(base: str, store: Store) -> None:
    demo = await login(base, "demo", "demo")
    status, body = await call(base, demo, "POST", "/apis/v1/apply", keypair("k1", "demo"))
    assert (status, body["outcome"]) == (201, "created")
    # the bearer form takes identity tokens too
    status, body = await call(base, demo, "GET", "/apis/v1/projects/demo/keypairs", bearer=True)
    assert status == 200 and [o["metadata"]["name"] for o in body["items"]] == ["k1"]
    status, body = await call(base, demo, "GET", "/apis/v1/projects/demo/keypairs/k1/events")
    assert status == 200 and body["kind"] == "EventList"

    message = forbidden(*await call(base, demo, "POST", "/apis/v1/apply", keypair("k2", "other")))
    assert message == (
        "user 'demo' (token scoped to project 'demo', roles: member, reader) may not write "
        "keypairs in project 'other'; policy 'desired:keypairs:write'"
    )
    forbidden(
        *await call(base, demo, "POST", "/apis/v1/projects/other/keypairs", keypair("k3", "other"))
    )
    assert await store.get_or_none(Ref("KeyPair", "other", "k2")) is None
    assert await store.get_or_none(Ref("KeyPair", "other", "k3")) is None

    other = await login(base, "other", "other")
    assert (await call(base, other, "POST", "/apis/v1/apply", keypair("k9", "other")))[0] == 201
    for path in (
        "/apis/v1/projects/other/keypairs",
        "/apis/v1/projects/other/keypairs/k9",
        "/apis/v1/projects/other/keypairs/k9/events",
    ):
        forbidden(*await call(base, demo, "GET", path))
    forbidden(*await call(base, demo, "DELETE", "/apis/v1/projects/other/keypairs/k9"))
    assert await store.get_or_none(Ref("KeyPair", "other", "k9")) is not None

    # a create at the kind's URL goes by the body's project
    status, _ = await call(base, demo, "POST", "/apis/v1/keypairs", keypair("k4", "demo"))
    assert status == 201
    forbidden(*await call(base, demo, "POST", "/apis/v1/keypairs", keypair("k5", "other")))
    assert await store.get_or_none(Ref("KeyPair", "other", "k5")) is None
    status, body = await call(base, demo, "GET", "/apis/v1/keypairs/k1")
    assert status == 400 and "project-scoped" in body["message"]

    # a list across every project is the admin's (Kubernetes' 403), even of the member's kind
    message = forbidden(*await call(base, demo, "GET", "/apis/v1/keypairs"))
    assert "keypairs of every project" in message
    boss = await login(base, "boss", None)
    status, body = await call(base, boss, "GET", "/apis/v1/keypairs")
    assert status == 200 and {o["metadata"]["name"] for o in body["items"]} == {"k1", "k4", "k9"}


async def test_a_reader_reads_and_cannot_write(base: str, store: Store) -> None:
    await store.create(keypair("k1", "demo"))
    viewer = await login(base, "viewer", "demo")
    status, body = await call(base, viewer, "GET", "/apis/v1/projects/demo/keypairs/k1")
    assert status == 200 and body["metadata"]["name"] == "k1"
    message = forbidden(*await call(base, viewer, "POST", "/apis/v1/apply", keypair("k2", "demo")))
    assert "may not write keypairs in project 'demo'" in message
    forbidden(*await call(base, viewer, "DELETE", "/apis/v1/projects/demo/keypairs/k1"))
    status, live = await call(base, viewer, "GET", "/apis/v1/projects/demo/keypairs/k1")
    forbidden(*await call(base, viewer, "PUT", "/apis/v1/projects/demo/keypairs/k1", live))
    assert await store.get_or_none(Ref("KeyPair", "demo", "k2")) is None
    assert await store.get_or_none(Ref("KeyPair", "demo", "k1")) is not None


async def test_cluster_kinds_are_the_admins_to_write(base: str, store: Store) -> None:
    await store.create(FLAVOR)
    demo = await login(base, "demo", "demo")
    status, body = await call(base, demo, "GET", "/apis/v1/flavors")
    assert status == 200 and [o["metadata"]["name"] for o in body["items"]] == ["m1.a"]
    bigger = {**FLAVOR, "metadata": {"name": "m1.b"}}
    message = forbidden(*await call(base, demo, "POST", "/apis/v1/apply", bigger))
    assert "may not write cluster-scoped flavors" in message
    forbidden(*await call(base, demo, "DELETE", "/apis/v1/flavors/m1.a"))
    assert await store.get_or_none(Ref("Flavor", None, "m1.b")) is None
    # hosts (Nova's os-hypervisors), users and projects are the admin's even to read
    for kind in ("Host", "User", "Project", "Aggregate", "QuotaClass"):
        forbidden(*await call(base, demo, "GET", f"/apis/v1/{KINDS[kind].plural}"))
    # a member may not raise its own project's quota
    quota = {"kind": "Quota", "metadata": {"name": "default", "project": "demo"}, "spec": {}}
    forbidden(*await call(base, demo, "POST", "/apis/v1/apply", quota))
    # an admin's identity token does what the bootstrap token does
    boss = await login(base, "boss", None)
    status, body = await call(base, boss, "POST", "/apis/v1/apply", bigger)
    assert (status, body.get("outcome")) == (201, "created"), body
    assert (await call(base, boss, "GET", "/apis/v1/users"))[0] == 200


async def test_a_disabled_users_token_is_refused(base: str, store: Store) -> None:
    demo = await login(base, "demo", "demo")
    assert (await call(base, demo, "GET", "/apis/v1/projects/demo/keypairs"))[0] == 200
    user = await store.get(Ref("User", None, "demo"))
    user["spec"]["enabled"] = False
    await store.update(user)

    async def refused() -> bool:
        status, body = await call(base, demo, "GET", "/apis/v1/projects/demo/keypairs")
        return status == 401 and body["reason"] == "Unauthorized"

    await eventually(refused, timeout=5)


async def _watch_lines(
    base: str, token: str, path: str, into: list[dict[str, Any]], ready: asyncio.Event
) -> None:
    async with (
        aiohttp.ClientSession(headers={"X-Auth-Token": token}) as s,
        s.get(base + path, params={"watch": "true"}) as resp,
    ):
        assert resp.status == 200
        ready.set()
        async for line in resp.content:
            if line.strip():
                into.append(json.loads(line))


async def test_a_members_watch_carries_its_project_only(base: str, store: Store) -> None:
    demo = await login(base, "demo", "demo")
    for path in ("/apis/v1/projects/other/keypairs", "/apis/v1/keypairs", "/apis/v1/hosts"):
        async with (
            aiohttp.ClientSession(headers={"X-Auth-Token": demo}) as s,
            s.get(base + path, params={"watch": "true"}) as resp,
        ):
            assert resp.status == 403, path
            assert (await resp.json())["reason"] == "Forbidden"
    async with (  # a cluster kind it may read
        aiohttp.ClientSession(headers={"X-Auth-Token": demo}) as s,
        s.get(base + "/apis/v1/flavors", params={"watch": "true"}) as resp,
    ):
        assert resp.status == 200
    seen: list[dict[str, Any]] = []
    ready = asyncio.Event()
    watching = asyncio.create_task(
        _watch_lines(base, demo, "/apis/v1/projects/demo/keypairs", seen, ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await store.create(keypair("theirs", "other"))
        await store.create(keypair("mine", "demo"))
        await store.create(keypair("theirs-too", "other"))
        await store.create(keypair("mine-too", "demo"))

        async def both_seen() -> bool:
            names = [e["object"]["metadata"]["name"] for e in seen if e["type"] != "BOOKMARK"]
            return names == ["mine", "mine-too"]

        await eventually(both_seen, timeout=5)
        assert {e["object"]["metadata"].get("project") for e in seen if e["type"] == "ADDED"} == {
            "demo"
        }
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)


async def test_rotation_retires_the_old_bootstrap_token(store: Store) -> None:
    async with serving(make_app(store.etcd, TOKEN)) as base:
        assert (await call(base, TOKEN, "GET", "/apis/v1/flavors", bearer=True))[0] == 200
        await rotate(store.etcd, "the-new-token")

        async def old_refused() -> bool:
            status, _ = await call(base, TOKEN, "GET", "/apis/v1/flavors", bearer=True)
            return status == 401

        await eventually(old_refused, timeout=5)
        assert (await call(base, "the-new-token", "GET", "/apis/v1/flavors", bearer=True))[0] == 200
    # an API server started later with the old token configured still refuses it
    async with serving(make_app(store.etcd, TOKEN)) as base:
        assert (await call(base, TOKEN, "GET", "/apis/v1/flavors", bearer=True))[0] == 401
        assert (await call(base, "the-new-token", "GET", "/apis/v1/flavors"))[0] == 200


async def test_an_expired_bootstrap_token_is_refused_saying_to_rotate(store: Store) -> None:
    async with serving(make_app(store.etcd, TOKEN, admin_token_ttl=1)) as base:
        assert (await call(base, TOKEN, "GET", "/apis/v1/flavors", bearer=True))[0] == 200
        await asyncio.sleep(1.1)
        status, body = await call(base, TOKEN, "GET", "/apis/v1/flavors", bearer=True)
        assert (status, body["reason"]) == (401, "Unauthorized")
        assert "expired" in body["message"] and "desired rotate-admin-token" in body["message"]
        await rotate(store.etcd, "fresh-token")

        async def fresh_taken() -> bool:
            return (await call(base, "fresh-token", "GET", "/apis/v1/flavors"))[0] == 200

        await eventually(fresh_taken, timeout=5)


def network(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "desired/v1",
        "kind": "Network",
        "metadata": {"name": name, "project": "demo"},
        "spec": {"cidr": "10.61.0.0/24", **spec},
    }


async def test_fields_only_admins_set_are_refused_to_members(base: str, store: Store) -> None:
    demo = await login(base, "demo", "demo")
    for spec in ({"shared": True}, {"external": True}, {"vlan": {"id": 7, "interface": "eth1"}}):
        message = forbidden(*await call(base, demo, "POST", "/apis/v1/apply", network("n", **spec)))
        assert message.startswith("user 'demo' may not set spec.") and "only an admin" in message
    image = {
        "apiVersion": "desired/v1",
        "kind": "Image",
        "metadata": {"name": "stolen", "project": "demo"},
        "spec": {"url": "file:///etc/shadow", "diskFormat": "raw", "containerFormat": "bare"},
    }
    message = forbidden(*await call(base, demo, "POST", "/apis/v1/projects/demo/images", image))
    assert "spec.url" in message
    assert await store.get_or_none(Ref("Image", "demo", "stolen")) is None
    assert await store.get_or_none(Ref("Network", "demo", "n")) is None
    # a member's plain network is its own; an admin shares it; the member re-applies its
    # file with the admin's value unchanged, and may not change it
    assert (await call(base, demo, "POST", "/apis/v1/apply", network("n")))[0] == 201
    boss = await login(base, "boss", None)
    status, body = await call(base, boss, "POST", "/apis/v1/apply", network("n", shared=True))
    assert status == 200 and body["object"]["spec"]["shared"] is True, body
    status, body = await call(
        base, demo, "POST", "/apis/v1/apply", network("n", shared=True, dnsServers=["10.0.0.2"])
    )
    assert status == 200, body
    forbidden(*await call(base, demo, "POST", "/apis/v1/apply", network("n", bridge="br-ex")))
