"""Tokens die with their user: disabled, stripped of the roles they carry, deleted or made anew."""

from __future__ import annotations

from typing import Any

from state.envelope import Ref
from state.passwords import hash_password
from state.store import Store
from tests.conftest import eventually
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
