"""The metadata service against real etcd and SQL (the conductor projects the instances).

Shown: requests without a host's signature are refused; each instance reads its
own EC2 and OpenStack trees (ids, addresses, key, user data, network data) and
never another's; the paths cloud-init reads answer in its order and shapes; a
guest sets its password once.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from apiserver.metadata.service import make_app
from state import ec2_ids, instance_signature, ipam
from state.envelope import Ref
from state.etcd import EtcdClient
from state.sql.migrate import upgrade
from state.sql.views import ComputeViews
from state.store import Store
from tests.conftest import eventually, serving
from tests.integration.test_conductor import conductor
from tests.integration.test_network_reconciler import give_port

SECRET = "metadata-test-secret"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh5metadata test@desired"


async def _instance(store: Store, name: str, address: str, user_data: bytes) -> dict[str, Any]:
    inst = await store.create(
        {
            "kind": "Instance",
            "metadata": {"name": name, "project": "demo"},
            "spec": {
                "flavor": "m1.tiny",
                "image": "tiny",
                "keyName": "mykey",
                "hostname": name,
                "userData": base64.b64encode(user_data).decode(),
                "metadata": {"role": name},
            },
        }
    )
    await give_port(store, inst, "default", address)
    return inst


@pytest.fixture
async def metadata(store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    sql_url = f"sqlite:///{tmp_path / 'md.sqlite'}"
    await asyncio.to_thread(upgrade, sql_url)
    await store.create({"kind": "Project", "metadata": {"name": "demo"}, "spec": {}})
    await store.create(
        {
            "kind": "KeyPair",
            "metadata": {"name": "mykey", "project": "demo"},
            "spec": {"publicKey": KEY},
        }
    )
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "default", "project": "demo"},
            "spec": {"cidr": "10.88.0.0/24", "dnsServers": ["10.88.0.2"]},
        }
    )
    await store.create(
        {
            "kind": "Image",
            "metadata": {"name": "tiny"},
            "spec": {"diskFormat": "qcow2", "containerFormat": "bare", "visibility": "public"},
        }
    )
    a = await _instance(store, "alpha", "10.88.0.10", b"#!/bin/sh\necho alpha\n")
    b = await _instance(store, "beta", "10.88.0.11", b"beta's secret")
    await store.create(
        {
            "kind": "FloatingIP",
            "metadata": {"name": "fip", "project": "demo"},
            "spec": {"pool": "public", "instance": "alpha"},
        }
    )
    fip = await store.get(Ref("FloatingIP", "demo", "fip"))

    def allocated(status: dict[str, Any]) -> bool:
        status["address"] = "203.0.113.7"
        return True

    await store.patch_status(
        Ref("FloatingIP", "demo", "fip"), allocated, uid=fip["metadata"]["uid"]
    )
    async with conductor(store.etcd, sql_url):
        views = ComputeViews(sql_url)
        await eventually(lambda: views.server_ref(b["metadata"]["uid"]))
        app = make_app(
            Store(EtcdClient(store.etcd.url, credentials=store.etcd.credentials)), views, SECRET
        )  # closes both
        async with serving(app) as base:
            yield base, [a, b]


async def fetch(
    base: str, path: str, uid: str | None, secret: str = SECRET, method: str = "GET", data: str = ""
) -> tuple[int, bytes]:
    headers = {}
    if uid is not None:
        headers = {
            "X-Instance-ID": uid,
            "X-Instance-ID-Signature": instance_signature.sign(secret, uid),
        }
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, base + path, headers=headers, data=data) as r,
    ):
        return r.status, await r.read()


async def test_only_a_signed_instance_id_is_answered(
    metadata: tuple[str, list[dict[str, Any]]],
) -> None:
    base, (a, b) = metadata
    uid_a, uid_b = a["metadata"]["uid"], b["metadata"]["uid"]
    assert (await fetch(base, "/latest/meta-data/instance-id", None))[0] == 403
    assert (await fetch(base, "/latest/meta-data/instance-id", uid_a, secret="wrong"))[0] == 403
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            base + "/latest/meta-data/instance-id",
            headers={
                "X-Instance-ID": uid_b,
                "X-Instance-ID-Signature": instance_signature.sign(SECRET, uid_a),
            },
        ) as r,
    ):
        assert r.status == 403  # a's signature does not open b's data
    for inst, other in ((a, b), (b, a)):
        uid = inst["metadata"]["uid"]
        status, body = await fetch(base, "/openstack/latest/meta_data.json", uid)
        assert status == 200
        doc = json.loads(body)
        assert doc["uuid"] == uid and doc["uuid"] != other["metadata"]["uid"]
        assert doc["meta"] == {"role": inst["metadata"]["name"]}
        user = (await fetch(base, "/latest/user-data", uid))[1]
        assert user == base64.b64decode(inst["spec"]["userData"])


async def raw_get(base: str, path: str, headers: bytes) -> bytes:
    """The status line of a GET sent byte for byte (headers no client would encode)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n".encode() + headers + b"\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def test_a_signature_or_id_not_in_ascii_is_refused_not_a_crash(
    metadata: tuple[str, list[dict[str, Any]]],
) -> None:
    base, (a, _) = metadata
    uid = a["metadata"]["uid"].encode()
    for headers in (
        b"X-Instance-ID: " + uid + b"\r\nX-Instance-ID-Signature: \xc3\xa9t\xc3\xa9\r\n",
        b"X-Instance-ID: " + uid + b"\r\nX-Instance-ID-Signature: \xff\xfe\r\n",
        b"X-Instance-ID: \xe9" + uid + b"\r\nX-Instance-ID-Signature: 00\r\n",
    ):
        status = await raw_get(base, "/latest/meta-data/instance-id", headers)
        assert status.startswith(b"HTTP/1.1 403"), (headers, status)


async def test_the_trees_cloud_init_reads(metadata: tuple[str, list[dict[str, Any]]]) -> None:
    base, (a, _b) = metadata
    uid = a["metadata"]["uid"]

    async def get(path: str) -> bytes:
        status, body = await fetch(base, path, uid)
        assert status == 200, (path, status, body)
        return body

    # DataSourceOpenStack: the version list, then the newest it knows, then its files
    versions = (await get("/openstack")).decode().split("\n")
    assert "2018-08-27" in versions and versions[-1] == "latest"
    files = (await get("/openstack/2018-08-27/")).decode().split("\n")
    assert {"meta_data.json", "network_data.json", "vendor_data.json", "user_data"} <= set(files)
    doc = json.loads(await get("/openstack/2018-08-27/meta_data.json"))
    assert doc["public_keys"] == {"mykey": KEY}
    assert doc["keys"] == [{"name": "mykey", "type": "ssh", "data": KEY}]
    assert doc["hostname"] == "alpha" and doc["launch_index"] == 0
    assert doc["availability_zone"] == "nova"
    net = json.loads(await get("/openstack/latest/network_data.json"))
    assert net["links"][0]["ethernet_mac_address"] == ipam.mac_of(uid, 0)
    assert net["networks"][0]["ip_address"] == "10.88.0.10"
    assert net["networks"][0]["netmask"] == "255.255.255.0"
    assert net["networks"][0]["routes"][0]["gateway"] == "10.88.0.1"
    assert net["services"] == [{"type": "dns", "address": "10.88.0.2"}]
    assert json.loads(await get("/openstack/latest/vendor_data.json")) == {}
    assert (await get("/openstack/latest/user_data")).startswith(b"#!/bin/sh")
    assert (await fetch(base, "/openstack/2013-04-04/network_data.json", uid))[0] == 404

    # DataSourceEc2: instance-id at 2009-04-04, user-data, then the meta-data crawl
    assert (await get("/2009-04-04/meta-data/instance-id")).decode() == ec2_ids.of_instance(a)
    assert (await fetch(base, "/2021-03-23/meta-data/instance-id", uid))[0] == 404
    assert "2009-04-04" in (await get("/")).decode().split("\n")
    entries = (await get("/latest/meta-data/")).decode().split("\n")
    for entry in ("instance-id", "local-hostname", "local-ipv4", "public-keys/", "placement/"):
        assert entry in entries
    assert (await get("/latest/meta-data/local-ipv4")) == b"10.88.0.10"
    assert (await get("/latest/meta-data/public-ipv4")) == b"203.0.113.7"
    assert (await get("/latest/meta-data/public-keys/")) == b"0=mykey"
    assert (await get("/latest/meta-data/public-keys/0/")) == b"openssh-key"
    assert (await get("/latest/meta-data/public-keys/0/openssh-key")).decode() == KEY
    assert (await get("/latest/meta-data/placement/availability-zone")) == b"nova"
    assert (await get("/latest/meta-data/ami-id")).startswith(b"ami-")
    assert (await fetch(base, "/latest/meta-data/nothing-here", uid))[0] == 404


async def test_a_guest_sets_its_password_once(metadata: tuple[str, list[dict[str, Any]]]) -> None:
    base, (a, b) = metadata
    uid = a["metadata"]["uid"]
    assert (await fetch(base, "/openstack/latest/password", uid)) == (200, b"")
    assert (await fetch(base, "/openstack/latest/password", uid, method="POST", data="c2VjcmV0"))[
        0
    ] == 200
    assert (await fetch(base, "/openstack/latest/password", uid)) == (200, b"c2VjcmV0")
    again = await fetch(base, "/openstack/latest/password", uid, method="POST", data="other")
    assert again[0] == 409
    too_long = await fetch(
        base, "/openstack/latest/password", b["metadata"]["uid"], method="POST", data="x" * 300
    )
    assert too_long[0] == 400
    assert (await fetch(base, "/openstack/latest/password", b["metadata"]["uid"])) == (200, b"")
