"""accessIPv4, accessIPv6 and OS-DCF:diskConfig are kept from a create, an update and a
rebuild and shown, as Nova does; ``progress`` is shown only for Nova's progress statuses."""

from __future__ import annotations

from typing import Any

from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture


async def test_access_addresses_kept_and_shown(cloud: str, store: Store) -> None:  # noqa: F811
    demo = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "small"},
            "spec": {"vcpus": 1, "ramMiB": 64, "diskGiB": 1},
        }
    )
    image = await store.create(
        {"kind": "Image", "metadata": {"name": "tiny"}, "spec": {"url": "http://example.invalid/t"}}
    )
    server = {
        "name": "vm",
        "flavorRef": "small",
        "imageRef": image["metadata"]["uid"],
        "accessIPv4": "192.0.2.7",
        "OS-DCF:diskConfig": "AUTO",
    }
    code, body = await demo("POST", "/servers", {"server": {**server, "accessIPv4": "nope"}})
    assert code == 400 and "accessIPv4" in body["badRequest"]["message"]
    code, body = await demo("POST", "/servers", {"server": server})
    assert code == 202, body
    sid = body["server"]["id"]
    code, shown = await demo("GET", f"/servers/{sid}")
    assert (shown["server"]["accessIPv4"], shown["server"]["accessIPv6"]) == ("192.0.2.7", "")
    assert shown["server"]["OS-DCF:diskConfig"] == "AUTO"
    assert shown["server"]["progress"] == 0  # BUILD shows it

    update = {
        "server": {"name": "renamed", "accessIPv4": "1.1.1.1", "accessIPv6": "::babe:202:202"}
    }
    code, body = await demo("PUT", f"/servers/{sid}", update)
    assert code == 200
    assert (body["server"]["name"], body["server"]["accessIPv6"]) == ("renamed", "::babe:202:202")
    code, body = await demo("PUT", f"/servers/{sid}", {"server": {"accessIPv6": "1.1.1.1"}})
    assert code == 400 and "badRequest" in body
    _, shown = await demo("GET", f"/servers/{sid}")
    assert (shown["server"]["accessIPv4"], shown["server"]["name"]) == ("1.1.1.1", "renamed")

    # a stopped server shows no progress, and a rebuild keeps new addresses too
    (inst,) = (await store.list("Instance", "demo")).items

    def stopped(status: dict[str, Any]) -> bool:
        status.update(novaStatus="SHUTOFF", vmState="stopped")
        return True

    await store.patch_status(
        Ref("Instance", "demo", inst["metadata"]["name"]), stopped, uid=inst["metadata"]["uid"]
    )

    async def shut_off() -> dict[str, Any]:
        _, shown = await demo("GET", f"/servers/{sid}")
        return dict(shown["server"]) if shown["server"]["status"] == "SHUTOFF" else {}

    assert "progress" not in await eventually(shut_off)
    rebuild = {"rebuild": {"imageRef": image["metadata"]["uid"], "accessIPv4": "192.0.2.9"}}
    code, body = await demo("POST", f"/servers/{sid}/action", rebuild)
    assert code == 202, body
    assert body["server"]["accessIPv4"] == "192.0.2.9"
