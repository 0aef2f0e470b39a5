"""os-server-groups and the create options that use them (the group hint, min/max count) on
a simulated host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from state.envelope import Ref, condition
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova, object_name_of
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud


async def test_server_groups(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url) as base:
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        other = Nova(base, await token_of(base, "other", "other-secret", "other"))
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]

        async def group(name: str, policy: str) -> dict[str, Any]:
            body = {"server_group": {"name": name, "policies": [policy]}}
            code, answer = await demo("POST", "/os-server-groups", body)
            assert code == 200, answer
            return dict(answer["server_group"])

        together = await group("Web Tier", "affinity")
        assert {k: together[k] for k in ("name", "policies", "members", "metadata")} == {
            "name": "Web Tier",
            "policies": ["affinity"],
            "members": [],
            "metadata": {},
        }
        apart = await group("db", "anti-affinity")
        bad = {"server_group": {"name": "x", "policies": ["sideways"]}}
        assert (await demo("POST", "/os-server-groups", bad))[0] == 400
        _, listed = await demo("GET", "/os-server-groups")
        assert sorted(g["name"] for g in listed["server_groups"]) == ["Web Tier", "db"]
        assert (await other("GET", "/os-server-groups"))[1]["server_groups"] == []
        assert (await other("GET", f"/os-server-groups/{apart['id']}"))[0] == 404

        async def boot(name: str, group_id: str, **extra: int) -> tuple[int, dict[str, Any]]:
            body = {
                "server": {"name": name, "imageRef": image_id, "flavorRef": "small", **extra},
                "os:scheduler_hints": {"group": group_id},
            }
            return await demo("POST", "/servers", body)

        # min/max count: as many as fit, named name-1, name-2, ...
        code, body = await boot("web", together["id"], min_count=2, max_count=3)
        assert code == 202, body
        _, shown = await demo("GET", f"/os-server-groups/{together['id']}")
        members = shown["server_group"]["members"]
        assert len(members) == 3

        async def all_active() -> bool:
            for sid in members:
                assert await demo.status_of(sid) == "ACTIVE"
            return True

        await eventually(all_active)
        _, detail = await demo("GET", "/servers/detail?name=^web")
        assert sorted(s["name"] for s in detail["servers"]) == ["web-1", "web-2", "web-3"]

        # anti-affinity on a single host: the second member finds no host
        code, first = await boot("db-a", apart["id"])
        assert code == 202
        code, second = await boot("db-b", apart["id"])
        assert code == 202

        async def first_active() -> bool:
            return await demo.status_of(first["server"]["id"]) == "ACTIVE"

        await eventually(first_active)
        second_ref = Ref("Instance", "demo", await object_name_of(store, second))

        async def refused() -> bool:
            scheduled = condition(await store.get(second_ref), "Scheduled")
            return scheduled is not None and scheduled["status"] == "False"

        await eventually(refused)

        # quotas: groups and members
        await store.create(
            {
                "kind": "Quota",
                "metadata": {"name": "default", "project": "demo"},
                "spec": {"limits": {"server_groups": 2, "server_group_members": 3}},
            }
        )
        code, body = await demo(
            "POST",
            "/os-server-groups",
            {"server_group": {"name": "third", "policies": ["affinity"]}},
        )
        assert (code, body["forbidden"]["message"]) == (
            403,
            "Quota exceeded, too many server groups.",
        )
        code, body = await boot("web-4", together["id"])
        assert (code, body["forbidden"]["message"]) == (
            403,
            "Quota exceeded, too many servers in group",
        )
        code, body = await boot("lost", "00000000-0000-0000-0000-000000000000")
        assert code == 400
        code, body = await boot("many", apart["id"], min_count=3, max_count=2)
        assert code == 400

        assert (await demo("DELETE", f"/os-server-groups/{apart['id']}"))[0] == 204
        assert (await demo("GET", f"/os-server-groups/{apart['id']}"))[0] == 404
