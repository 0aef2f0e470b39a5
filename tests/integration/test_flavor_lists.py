"""Flavor lists as Tempest asks them: ``minRam``/``minDisk``, ``sort_key``/``sort_dir``,
``limit``/``marker`` with ``flavors_links``, and flavors created with an integer id."""

from __future__ import annotations

from pathlib import Path

from state.store import Store
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import api_cloud


async def test_flavor_list_filters_sorting_and_paging(store: Store, tmp_path: Path) -> None:
    async with api_cloud(store, f"sqlite:///{tmp_path / 'api.sqlite'}") as base:
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        for fid, ram, disk in ((1001, 256, 1), (1002, 512, 5), (1003, 1024, 10)):
            new = {"name": f"f{fid}", "ram": ram, "vcpus": 1, "disk": disk, "id": fid}
            new["os-flavor-access:is_public"] = "True"  # Nova's boolean strings too
            code, body = await admin("POST", "/flavors", {"flavor": new})
            assert code == 200, body
            assert body["flavor"]["id"] == str(fid)  # an integer id answered as a string
        code, body = await admin("POST", "/flavors", {"flavor": {**new, "id": 1003, "name": "x"}})
        assert code == 409 and "conflictingRequest" in body

        async def names(query: str, detail: bool = False) -> list[str]:
            code, body = await demo("GET", f"/flavors{'/detail' if detail else ''}?{query}")
            assert code == 200, body
            return [f["name"] for f in body["flavors"]]

        assert await names("minRam=512") == ["f1002", "f1003"]
        assert await names("minDisk=6", detail=True) == ["f1003"]
        assert await names("minRam=300&minDisk=1") == ["f1002", "f1003"]
        assert await names("sort_key=memory_mb&sort_dir=desc") == ["f1003", "f1002", "f1001"]
        assert await names("sort_key=flavorid") == ["f1001", "f1002", "f1003"]
        # a page starts after its marker, and a full page links to the next one
        code, body = await demo("GET", "/flavors/detail?limit=1&marker=1001")
        assert [f["id"] for f in body["flavors"]] == ["1002"]
        (link,) = body["flavors_links"]
        assert link["rel"] == "next" and "/compute/v2.1/flavors/detail?" in link["href"]
        assert "marker=1002" in link["href"] and "limit=1" in link["href"]
        assert await names("marker=1002") == ["f1003"]
        code, body = await demo("GET", "/flavors?limit=5")
        assert "flavors_links" not in body
        for bad in ("minRam=x", "sort_key=bogus", "sort_dir=up", "marker=nope"):
            code, body = await demo("GET", f"/flavors?{bad}")
            assert code == 400 and "badRequest" in body, bad
