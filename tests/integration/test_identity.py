"""The identity service, driven by the real keystoneauth1 client and by hand for its errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from apiserver.app import make_app
from apiserver.image_data import ImageLimits
from state.passwords import hash_password
from state.sql.migrate import upgrade
from state.store import Store
from tests.conftest import serving
from tests.integration.test_conductor import conductor


async def make_user(store: Store, name: str, roles: list[dict[str, str]]) -> None:
    """A user with password ``<name>-secret`` and these role assignments."""
    await store.create(
        {
            "kind": "User",
            "metadata": {"name": name},
            "spec": {
                "passwordHash": hash_password(f"{name}-secret", iterations=1000),
                "roles": roles,
            },
        }
    )


@contextlib.asynccontextmanager
async def api_cloud(
    store: Store,
    sql_url: str,
    max_limit: int = 50,
    policy_file: Path | None = None,
    image_dir: Path | None = None,
    image_limits: ImageLimits | None = None,
    keystone_url: str = "",
    keystone_cache_seconds: float = 300.0,
) -> AsyncIterator[str]:
    """An API server on a free port with projects demo, other and admin, users demo,
    other (members of their projects) and admin, and a conductor projecting into
    ``sql_url``, which the API server reads; ``policy_file`` overrides its policy;
    ``image_dir`` keeps uploaded images' data; ``keystone_url``: an external Keystone
    whose tokens the Compute and image APIs take instead."""
    await asyncio.to_thread(upgrade, sql_url)
    for name in ("demo", "other", "admin"):
        await store.create({"kind": "Project", "metadata": {"name": name}, "spec": {}})
    for user in ("demo", "other"):
        await make_user(store, user, [{"role": "member", "project": user}])
    await make_user(store, "admin", [{"role": "admin"}, {"role": "admin", "project": "admin"}])
    app = make_app(
        store.etcd,
        "bootstrap-token",
        token_ttl=600,
        sql_url=sql_url,
        max_limit=max_limit,
        policy_file=policy_file,
        image_dir=image_dir,
        image_limits=image_limits,
        keystone_url=keystone_url,
        keystone_cache_seconds=keystone_cache_seconds,
    )
    async with conductor(store.etcd, sql_url), serving(app) as base:
        yield base


@pytest.fixture
async def cloud(store: Store, tmp_path: Path) -> AsyncIterator[str]:
    async with api_cloud(store, f"sqlite:///{tmp_path / 'api.sqlite'}") as base:
        yield base


def login(base: str, user: str, password: str, **scope: str) -> ks_session.Session:
    auth = v3.Password(
        auth_url=f"{base}/identity",
        username=user,
        password=password,
        user_domain_name="Default",
        **scope,
    )
    return ks_session.Session(auth=auth)


async def test_keystoneauth_logs_in_and_finds_the_catalog(cloud: str) -> None:
    sess = login(cloud, "demo", "demo-secret", project_name="demo", project_domain_name="Default")
    token = await asyncio.to_thread(sess.get_token)
    assert token
    compute = await asyncio.to_thread(sess.get_endpoint, service_type="compute", interface="public")
    assert compute == f"{cloud}/compute/v2.1"
    access = await asyncio.to_thread(sess.auth.get_access, sess)
    assert access.project_name == "demo" and sorted(access.role_names) == ["member", "reader"]
    # the same through a project id, and the novaclient style of auth URL (.../v3)
    pid = access.project_id
    by_id = ks_session.Session(
        auth=v3.Password(
            auth_url=f"{cloud}/identity/v3",
            username="demo",
            password="demo-secret",
            user_domain_id="default",
            project_id=pid,
        )
    )
    assert (await asyncio.to_thread(by_id.auth.get_access, by_id)).project_id == pid


async def test_wrong_password_other_project_and_revocation(cloud: str) -> None:
    bad = login(cloud, "demo", "nope", project_name="demo", project_domain_name="Default")
    with pytest.raises(ks_exceptions.Unauthorized):
        await asyncio.to_thread(bad.get_token)
    elsewhere = login(
        cloud, "demo", "demo-secret", project_name="other", project_domain_name="Default"
    )
    with pytest.raises(ks_exceptions.Unauthorized):
        await asyncio.to_thread(elsewhere.get_token)
    # every user and project is in the Default domain: named in another, they are not found
    for user_domain, project_domain in (("Elsewhere", "Default"), ("Default", "Elsewhere")):
        other_domain = ks_session.Session(
            auth=v3.Password(
                auth_url=f"{cloud}/identity",
                username="demo",
                password="demo-secret",
                user_domain_name=user_domain,
                project_name="demo",
                project_domain_name=project_domain,
            )
        )
        with pytest.raises(ks_exceptions.Unauthorized):
            await asyncio.to_thread(other_domain.get_token)
    async with aiohttp.ClientSession() as http:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": "demo",
                            "domain": {"id": "default"},
                            "password": "demo-secret",
                        }
                    },
                },
                "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}},
            }
        }
        async with http.post(f"{cloud}/identity/v3/auth/tokens", json=body) as resp:
            assert resp.status == 201
            token = resp.headers["X-Subject-Token"]
        headers = {"X-Auth-Token": token, "X-Subject-Token": token}
        async with http.get(f"{cloud}/identity/v3/auth/tokens", headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["token"]["project"]["name"] == "demo"
        async with http.get(f"{cloud}/identity/v3/auth/projects", headers=headers) as resp:
            assert [p["name"] for p in (await resp.json())["projects"]] == ["demo"]
        async with http.delete(f"{cloud}/identity/v3/auth/tokens", headers=headers) as resp:
            assert resp.status == 204
        async with http.get(f"{cloud}/identity/v3/auth/projects", headers=headers) as resp:
            assert resp.status == 401
            error = (await resp.json())["error"]
            assert (error["code"], error["title"]) == (401, "Unauthorized")
        async with http.post(f"{cloud}/identity/v3/auth/tokens", data=b"{") as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == 400
        async with http.get(f"{cloud}/identity") as resp:
            assert resp.status == 300
            assert (await resp.json())["versions"]["values"][0]["id"] == "v3.14"


async def test_admin_sees_every_project_and_by_name(cloud: str) -> None:
    sess = login(
        cloud, "admin", "admin-secret", project_name="admin", project_domain_name="Default"
    )
    token = await asyncio.to_thread(sess.get_token)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{cloud}/identity/v3/projects",
            params={"name": "other"},
            headers={"X-Auth-Token": token},
        ) as resp,
    ):
        projects = (await resp.json())["projects"]
    assert [p["name"] for p in projects] == ["other"]
    assert projects[0]["domain_id"] == "default" and len(projects[0]["id"]) == 32
    system = ks_session.Session(
        auth=v3.Password(
            auth_url=f"{cloud}/identity",
            username="admin",
            password="admin-secret",
            user_domain_name="Default",
            system_scope="all",
        )
    )
    access = await asyncio.to_thread(system.auth.get_access, system)
    assert access.system_scoped and "admin" in access.role_names
