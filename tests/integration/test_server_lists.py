"""Server lists from SQL with Nova's filters, sort keys and paging, on SQLite and PostgreSQL.

A simulated host, the scheduler, the conductor and the API server run against
a real etcd; requests carry real keystoneauth1 tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import cloud as hostd_cloud
from tests.integration.test_identity import api_cloud

NAMES = ["web-1", "db-1", "web-2", "db-2", "web-3", "db-3", "web-4"]


async def _names(nova: Nova, query: str) -> list[str]:
    code, body = await nova("GET", "/servers/detail" + query)
    assert code == 200, body
    return [s["name"] for s in body["servers"]]


async def _follow(nova: Nova, first: str) -> list[list[str]]:
    """The pages of a list, following its "next" links."""
    pages = []
    code, body = await nova("GET", first)
    while True:
        assert code == 200, body
        pages.append([s["name"] for s in body["servers"]])
        nexts = [link["href"] for link in body.get("servers_links", []) if link["rel"] == "next"]
        if not nexts:
            return pages
        async with (
            aiohttp.ClientSession() as http,
            http.get(nexts[0], headers=nova.headers) as resp,
        ):
            code, body = resp.status, await resp.json()


async def _all(nova: Nova, query: str) -> list[str]:
    """The names of every page of a detail list."""
    return [name for page in await _follow(nova, "/servers/detail" + query) for name in page]


async def _fault(nova: Nova, path: str) -> tuple[int, str]:
    code, body = await nova("GET", path)
    ((_, fault),) = body.items()
    return code, fault["message"]


async def test_lists_filter_sort_and_page(store: Store, sql_url: str, tmp_path: Path) -> None:
    async with hostd_cloud(store, tmp_path), api_cloud(store, sql_url, max_limit=5) as base:
        nova = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))
        other = Nova(base, await token_of(base, "other", "other-secret", "other"))
        admin = Nova(base, await token_of(base, "admin", "admin-secret", "admin"))
        image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
        ids: dict[str, str] = {}
        for name in NAMES:
            server = {"server": {"name": name, "imageRef": image_id, "flavorRef": "small"}}
            code, body = await nova("POST", "/servers", server)
            assert code == 202, body
            ids[name] = body["server"]["id"]
        code, body = await other("POST", "/servers", {"server": dict(server["server"], name="x-1")})
        assert code == 202

        async def all_active() -> bool:
            return len(await _all(nova, "?status=ACTIVE")) == len(NAMES)

        await eventually(all_active)
        code, _ = await nova("POST", f"/servers/{ids['db-1']}/action", {"os-stop": None})
        assert code == 202

        async def stopped() -> bool:
            return await _names(nova, "?status=SHUTOFF") == ["db-1"]

        await eventually(stopped)

        # newest first by default; the page is capped at max_limit and links to the next
        newest_first = list(reversed(NAMES))
        assert await _follow(nova, "/servers/detail") == [newest_first[:5], newest_first[5:]]
        assert await _follow(nova, "/servers?limit=3") == [
            newest_first[:3],
            newest_first[3:6],
            newest_first[6:],
        ]
        # a limit above max_limit is capped too; a full last page links to an empty one
        assert await _follow(nova, "/servers?limit=7") == [newest_first[:5], newest_first[5:]]
        assert await _follow(nova, "/servers?name=web&limit=2") == [
            ["web-4", "web-3"],
            ["web-2", "web-1"],
            [],
        ]
        # sort keys and directions
        assert await _names(nova, "?sort_key=display_name&sort_dir=asc") == sorted(NAMES)[:5]
        by_state = await _all(nova, "?sort_key=vm_state&sort_dir=desc&sort_key=display_name")
        states = (await nova("GET", "/servers/detail?limit=9"))[1]["servers"]
        assert by_state == ["db-1", *sorted(set(NAMES) - {"db-1"}, reverse=True)], [
            (s["name"], s["OS-EXT-STS:vm_state"], s["OS-EXT-STS:task_state"]) for s in states
        ]
        # filters: a name pattern, statuses (any case; unknown ones match nothing at 2.1)
        assert await _names(nova, "?name=^web&sort_key=display_name&sort_dir=asc") == [
            "web-1",
            "web-2",
            "web-3",
            "web-4",
        ]
        assert await _names(nova, "?name=db-[12]&sort_dir=asc") == ["db-1", "db-2"]
        assert len(await _all(nova, "?status=active")) == 6
        assert await _names(nova, "?status=BOGUS") == []
        flavor_id = (await store.get(Ref("Flavor", None, "small")))["metadata"]["uid"]
        assert len(await _all(nova, f"?flavor={flavor_id}&image={image_id}")) == 7
        # a member's unknown and admin-only filters are dropped, as Nova does
        assert len(await _all(nova, "?foo=bar&host=elsewhere")) == 7

        # changes-since brings deleted servers along, as DELETED
        since = quote((dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat())
        code, _ = await nova("DELETE", f"/servers/{ids['web-4']}")
        assert code == 204

        async def gone() -> bool:
            return "web-4" not in await _all(nova, "")

        await eventually(gone)
        code, body = await nova("GET", f"/servers/detail?changes-since={since}&name=web-4")
        deleted = [s for s in body["servers"] if s["name"] == "web-4"]
        assert [s["status"] for s in deleted] == ["DELETED"]
        assert deleted[0]["OS-EXT-STS:vm_state"] == "deleted"

        # bad requests: Nova's faults
        assert await _fault(nova, "/servers?marker=nope") == (400, "marker [nope] not found")
        code, message = await _fault(nova, "/servers?limit=abc")
        assert code == 400 and "limit" in message
        code, message = await _fault(nova, "/servers?sort_key=bogus")
        assert code == 400 and "sort_key" in message
        code, message = await _fault(nova, "/servers?sort_key=display_name&sort_dir=up")
        assert (code, message) == (
            400,
            "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'",
        )
        assert await _fault(nova, "/servers?sort_key=host") == (
            403,
            "Only administrators can sort servers by host",
        )
        code, message = await _fault(nova, "/servers?changes-since=yesterday")
        assert code == 400 and "changes-since" in message
        code, message = await _fault(nova, "/servers?all_tenants=1")
        assert code == 403
        # another project's marker is not found either
        code, body = await other("GET", f"/servers?marker={ids['web-1']}")
        assert code == 400

        # admins: every project, one project, a host, joined-table filters refused
        everyone = await _all(admin, "?all_tenants=1&sort_key=display_name&sort_dir=asc")
        assert everyone == sorted([*NAMES[:-1], "x-1"])
        other_id = (await store.get(Ref("Project", None, "other")))["metadata"]["uid"].replace(
            "-", ""
        )
        assert await _project_id(other) == other_id  # Keystone's form of the project id
        assert await _names(admin, f"?all_tenants=1&project_id={other_id}") == ["x-1"]
        assert len(await _all(admin, "?all_tenants=1&host=sim-1")) == 7
        assert await _names(admin, "?all_tenants=1&host=elsewhere") == []
        assert await _fault(admin, "/servers?metadata=x") == (
            400,
            "Invalid filter field: metadata.",
        )
        assert len(await _all(admin, "?all_tenants=1&sort_key=host")) == 7


async def _project_id(nova: Nova) -> str:
    code, body = await nova("GET", "/servers/detail")
    assert code == 200 and body["servers"], body
    tenant: Any = body["servers"][0]["tenant_id"]
    return str(tenant)


async def test_openstacksdk_and_novaclient_page_through_2500_servers(
    store: Store, tmp_path: Path
) -> None:
    """2,500 servers (Instances written straight to etcd, projected into SQL by the
    conductor), listed page by page (50 a page here) by openstacksdk and novaclient, which
    follow the "next" links: each server once, newest first."""
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with api_cloud(store, sql_url) as base:
        batch = 100  # etcd takes at most 128 operations in one transaction
        for start in range(0, 2500, batch):
            await store.create_many(
                [
                    {
                        "kind": "Instance",
                        "metadata": {"name": f"vm-{i:04d}", "project": "demo"},
                        "spec": {"flavor": "small", "image": "tiny"},
                    }
                    for i in range(start, start + batch)
                ]
            )
        demo = Nova(base, await token_of(base, "demo", "demo-secret", "demo"))

        async def projected() -> bool:
            code, body = await demo("GET", "/servers?limit=1&name=^vm-2499$")
            return code == 200 and len(body["servers"]) == 1

        await eventually(projected, timeout=60)
        sdk_names, nova_names = await asyncio.to_thread(_list_with_clients, base)
        expected = [f"vm-{i:04d}" for i in reversed(range(2500))]
        assert sdk_names == expected
        assert nova_names == expected


def _list_with_clients(base: str) -> tuple[list[str], list[str]]:
    import openstack
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3
    from novaclient import client as nova_client

    auth = {
        "auth_url": f"{base}/identity",
        "username": "demo",
        "password": "demo-secret",
        "project_name": "demo",
        "user_domain_name": "Default",
        "project_domain_name": "Default",
    }
    conn = openstack.connect(**auth)
    try:
        sdk_names = [s.name for s in conn.compute.servers(details=False)]
    finally:
        conn.close()
    session = ks_session.Session(auth=v3.Password(**auth))
    nova = nova_client.Client("2.47", session=session)
    nova_names = [s.name for s in nova.servers.list(detailed=True, limit=-1)]
    return sdk_names, nova_names
