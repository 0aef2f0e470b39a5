"""Tokens die with their grant: their user disabled, stripped of the roles they carry, deleted or
made anew; their project deleted, made anew or disabled. On every API server, within a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from apiserver.app import make_app
from fixtures.etcd import EtcdServer
from state.envelope import Ref
from state.passwords import hash_password
from state.store import Store
from tests.conftest import eventually, serving
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture


async def _change_user(store: Store, name: str, **spec: Any) -> None:
    user = await store.get(Ref("User", None, name))
    await store.update(dict(user, spec={**user["spec"], **spec}))


async def _refused(nova: Nova) -> bool:
    code, body = await nova("GET", "/servers")
    assert code == 401, (code, body)
    return True


async def _served(nova: Nova) -> bool:
    code, body = await nova("GET", "/servers")
    assert code == 200, (code, body)
    return True


async def test_a_disabled_user_s_token_is_refused(cloud: str, store: Store) -> None:  # noqa: F811
    nova = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    await _served(nova)
    await _change_user(store, "demo", enabled=False)
    await eventually(lambda: _refused(nova))
    await _change_user(store, "demo", enabled=True)
    await eventually(lambda: _served(nova))  # its account is back: so are its tokens


async def test_a_token_carrying_a_role_its_user_lost_is_refused(
    cloud: str,  # noqa: F811
    store: Store,
) -> None:
    nova = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    other = Nova(cloud, await token_of(cloud, "other", "other-secret", "other"))
    await _change_user(store, "demo", roles=[])
    await eventually(lambda: _refused(nova))
    await _served(other)  # another user's token is not touched
    await _change_user(store, "demo", roles=[{"role": "reader", "project": "demo"}])
    await _refused(nova)  # member is still gone: reader alone does not carry the token
    await _change_user(store, "demo", roles=[{"role": "member", "project": "demo"}])
    await eventually(lambda: _served(nova))


async def test_a_deleted_or_remade_user_s_token_is_refused(
    cloud: str,  # noqa: F811
    store: Store,
) -> None:
    nova = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    await store.delete(Ref("User", None, "demo"))
    await eventually(lambda: _refused(nova))
    await store.create(
        {
            "kind": "User",
            "metadata": {"name": "demo"},
            "spec": {
                "passwordHash": hash_password("demo-secret", iterations=1000),
                "roles": [{"role": "member", "project": "demo"}],
            },
        }
    )
    fresh = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    await _served(fresh)
    await _refused(nova)  # a user of the same name, not the one the old token is of


async def _validated(base: str, caller: str, subject: str) -> int:
    """The status of identity's validation of ``subject`` asked with ``caller``'s token."""
    headers = {"X-Auth-Token": caller, "X-Subject-Token": subject}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/identity/v3/auth/tokens", headers=headers) as resp,
    ):
        return resp.status


async def test_a_deleted_or_remade_project_s_tokens_are_refused_on_every_api_server(
    cloud: str,  # noqa: F811
    store: Store,
    etcd_server: EtcdServer,
    tmp_path: Path,
) -> None:
    demo_token = await token_of(cloud, "demo", "demo-secret", "demo")
    other_token = await token_of(cloud, "other", "other-secret", "other")
    # a second API server on the same etcd (and the conductor's database)
    second_app = make_app(
        etcd_server.client(),
        "bootstrap-token",
        token_ttl=600,
        sql_url=f"sqlite:///{tmp_path / 'api.sqlite'}",
    )
    async with serving(second_app) as second:
        servers = (cloud, second)
        for base in servers:
            await _served(Nova(base, demo_token))
            assert await _validated(base, other_token, demo_token) == 200

        await store.delete(Ref("Project", None, "demo"))

        async def refused_everywhere() -> bool:
            for base in servers:
                await _refused(Nova(base, demo_token))
                assert await _validated(base, other_token, demo_token) == 404
                assert await _validated(base, demo_token, other_token) == 401
            return True

        await eventually(refused_everywhere, timeout=1.0)
        for base in servers:  # a token scoped to another project is not touched
            await _served(Nova(base, other_token))
            assert await _validated(base, other_token, other_token) == 200

        # a project made again under the name is another: the old token stays refused
        await store.create({"kind": "Project", "metadata": {"name": "demo"}, "spec": {}})
        fresh = await token_of(cloud, "demo", "demo-secret", "demo")
        for base in servers:
            await eventually(lambda base=base: _served(Nova(base, fresh)), timeout=1.0)
            await _refused(Nova(base, demo_token))


async def test_a_disabled_project_s_tokens_are_refused(cloud: str, store: Store) -> None:  # noqa: F811
    nova = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    other = Nova(cloud, await token_of(cloud, "other", "other-secret", "other"))
    project = await store.get(Ref("Project", None, "demo"))
    await store.update(dict(project, spec={**project["spec"], "enabled": False}))
    await eventually(lambda: _refused(nova), timeout=1.0)
    await _served(other)
    project = await store.get(Ref("Project", None, "demo"))
    await store.update(dict(project, spec={**project["spec"], "enabled": True}))
    await eventually(lambda: _served(nova), timeout=1.0)  # the same project, enabled again
