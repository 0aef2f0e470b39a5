"""Tokens of an external Keystone: the API server validates them there (another identity
service on its own etcd stands in for Keystone), keeps them a while, and mirrors their
projects, so that servers carry the Keystone project's id."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from apiserver import identity
from state.envelope import Ref
from state.store import Store
from tests.conftest import secured_etcd, serving
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import flavor_and_image
from tests.integration.test_identity import api_cloud, make_user


async def test_tokens_of_an_external_keystone(store: Store, tmp_path: Path) -> None:
    await flavor_and_image(store)
    with secured_etcd(tmp_path / "keystone-etcd") as other_etcd:
        keystone_store = Store(other_etcd.client())
        await keystone_store.create({"kind": "Project", "metadata": {"name": "team"}, "spec": {}})
        await make_user(keystone_store, "alice", [{"role": "member", "project": "team"}])
        team = await keystone_store.get(Ref("Project", None, "team"))
        team_id = team["metadata"]["uid"].replace("-", "")
        keystone = web.Application()
        keystone.add_subapp("/identity", identity.make_app(identity.Identity(keystone_store, 600)))
        sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
        async with (
            serving(keystone) as keystone_base,
            api_cloud(
                store,
                sql_url,
                keystone_url=f"{keystone_base}/identity",
                keystone_cache_seconds=0.5,
            ) as base,
        ):
            token = await token_of(keystone_base, "alice", "alice-secret", "team")
            alice = Nova(base, token)
            assert await alice("GET", "/servers") == (200, {"servers": []})
            # the Keystone project, mirrored here with its id
            mirror = (await store.get(Ref("Project", None, "team")))["metadata"]["uid"]
            assert mirror == str(uuid.UUID(hex=team_id))
            tiny = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
            server = {"server": {"name": "vm", "imageRef": tiny, "flavorRef": "small"}}
            code, body = await alice("POST", "/servers", server)
            assert code == 202, body
            _, shown = await alice("GET", f"/servers/{body['server']['id']}")
            assert shown["server"]["tenant_id"] == team_id
            # tokens this API server's own identity issued are no longer taken
            own = await token_of(base, "demo", "demo-secret", "demo")
            assert (await Nova(base, own)("GET", "/servers"))[0] == 401
            assert (await Nova(base, "not-a-token")("GET", "/servers"))[0] == 401
            # revoked at Keystone: taken while kept, refused once that ends
            async with (
                aiohttp.ClientSession() as http,
                http.delete(
                    f"{keystone_base}/identity/v3/auth/tokens",
                    headers={"X-Auth-Token": token, "X-Subject-Token": token},
                ) as resp,
            ):
                assert resp.status == 204
            await asyncio.sleep(0.6)
            assert (await alice("GET", "/servers"))[0] == 401
        await keystone_store.etcd.close()
