"""The API server's /metrics is for admins alone: the bootstrap token or an identity token with
the admin role; 401 without a token (or with a bad one), 403 for a member, in the Status form."""

from __future__ import annotations

from typing import Any

import aiohttp

from apiserver.admin_token import rotate
from apiserver.app import make_app
from fixtures.etcd import EtcdServer
from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually, serving
from tests.integration.test_compute_api import token_of
from tests.integration.test_identity import make_user

TEXT = b"# TYPE desired_leader gauge\ndesired_leader 1\n"


async def scrape(base: str, **headers: str) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/metrics", headers=headers) as resp,
    ):
        body = await resp.read()
        kind = resp.content_type
        return resp.status, kind, (await resp.json()) if kind == "application/json" else body


async def test_metrics_are_for_admins_alone(store: Store, etcd_server: EtcdServer) -> None:
    for name in ("demo", "admin"):
        await store.create({"kind": "Project", "metadata": {"name": name}, "spec": {}})
    await make_user(store, "demo", [{"role": "member", "project": "demo"}])
    await make_user(store, "admin", [{"role": "admin", "project": "admin"}])
    app = make_app(etcd_server.client(), "bootstrap-token", metrics_text=lambda: TEXT)
    async with serving(app) as base:
        admin = await token_of(base, "admin", "admin-secret", "admin")
        member = await token_of(base, "demo", "demo-secret", "demo")

        assert await scrape(base, Authorization="Bearer bootstrap-token") == (
            200,
            "text/plain",
            TEXT,
        )
        assert (await scrape(base, **{"X-Auth-Token": "bootstrap-token"}))[0] == 200
        assert await scrape(base, Authorization=f"Bearer {admin}") == (200, "text/plain", TEXT)
        assert (await scrape(base, **{"X-Auth-Token": admin}))[0] == 200

        code, _, body = await scrape(base)
        assert code == 401
        assert (body["kind"], body["code"], body["reason"]) == ("Status", 401, "Unauthorized")
        assert "admin role" in body["message"]
        for wrong in ("Bearer nope", f"Bearer {admin}x", "Basic YWRtaW46YWRtaW4="):
            code, _, body = await scrape(base, Authorization=wrong)
            assert (code, body["code"]) == (401, 401), wrong
        code, _, body = await scrape(base, Authorization=f"Bearer {member}")
        assert code == 403
        assert (body["kind"], body["code"], body["reason"]) == ("Status", 403, "Forbidden")

        # the admin's token dies with its grant here too
        user = await store.get(Ref("User", None, "admin"))
        await store.update(dict(user, spec={**user["spec"], "roles": []}))

        async def refused() -> bool:
            assert (await scrape(base, Authorization=f"Bearer {admin}"))[0] == 401
            return True

        await eventually(refused, timeout=1.0)

        # the bootstrap token as the declarative API takes it: a rotation replaces it
        await rotate(store.etcd, "rotated-token")

        async def rotated() -> bool:
            assert (await scrape(base, Authorization="Bearer bootstrap-token"))[0] == 401
            assert (await scrape(base, Authorization="Bearer rotated-token"))[0] == 200
            return True

        await eventually(rotated, timeout=1.0)
