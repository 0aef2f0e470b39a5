"""A server's addresses (``/ips``), the password its guest set (``os-server-password``),
its diagnostics (admins, before 2.48) and Nova's legacy ``/extensions`` list, against real
etcd and SQL at 2.1, in Nova's shapes and faults."""

from __future__ import annotations

from typing import Any

from apiserver.metadata.service import PASSWORD_ANNOTATION
from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture
from tests.integration.test_network_reconciler import give_port


async def test_server_addresses_password_diagnostics(cloud: str, store: Store) -> None:  # noqa: F811
    demo = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    other = Nova(cloud, await token_of(cloud, "other", "other-secret", "other"))
    admin = Nova(cloud, await token_of(cloud, "admin", "admin-secret", "admin"))
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "small"},
            "spec": {"vcpus": 1, "ramMiB": 512, "diskGiB": 1},
        }
    )
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "private", "project": "demo"},
            "spec": {"cidr": "10.60.0.0/24"},
        }
    )
    inst = await store.create(
        {
            "kind": "Instance",
            "metadata": {"name": "vm", "project": "demo"},
            "spec": {"flavor": "small", "image": "tiny", "networks": [{"network": "private"}]},
        }
    )
    uid = inst["metadata"]["uid"]
    await give_port(store, inst, "private", "10.60.0.10")

    async def known() -> bool:
        return (await demo("GET", f"/servers/{uid}"))[0] == 200

    await eventually(known)
    assert await demo("GET", f"/servers/{uid}/ips") == (
        200,
        {"addresses": {"private": [{"addr": "10.60.0.10", "version": 4}]}},
    )
    assert await demo("GET", f"/servers/{uid}/ips/private") == (
        200,
        {"private": [{"addr": "10.60.0.10", "version": 4}]},
    )
    code, body = await demo("GET", f"/servers/{uid}/ips/public")
    assert code == 404 and "not a member" in body["itemNotFound"]["message"]
    assert (await other("GET", f"/servers/{uid}/ips"))[0] == 404

    # the password: empty until the guest sets one, cleared by its owner
    assert await demo("GET", f"/servers/{uid}/os-server-password") == (200, {"password": ""})
    current = await store.get(Ref("Instance", "demo", "vm"))
    current["metadata"]["annotations"] = {
        **(current["metadata"].get("annotations") or {}),
        PASSWORD_ANNOTATION: "c2VjcmV0",
    }
    await store.update(current)
    assert await demo("GET", f"/servers/{uid}/os-server-password") == (
        200,
        {"password": "c2VjcmV0"},
    )
    assert (await demo("DELETE", f"/servers/{uid}/os-server-password"))[0] == 204
    assert await demo("GET", f"/servers/{uid}/os-server-password") == (200, {"password": ""})
    assert (await other("DELETE", f"/servers/{uid}/os-server-password"))[0] == 404

    # diagnostics: admins only, once the server is on a host
    code, body = await demo("GET", f"/servers/{uid}/diagnostics")
    assert code == 403 and "forbidden" in body
    code, body = await admin("GET", f"/servers/{uid}/diagnostics")
    assert code == 409 and "conflictingRequest" in body

    def placed(status: dict[str, Any]) -> bool:
        status["host"] = "h1"
        return True

    await store.patch_status(Ref("Instance", "demo", "vm"), placed, uid=uid)
    assert await admin("GET", f"/servers/{uid}/diagnostics") == (200, {"memory": 512 * 1024})


async def test_extensions_list(cloud: str) -> None:  # noqa: F811
    demo = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    code, body = await demo("GET", "/extensions")
    assert code == 200
    aliases = [e["alias"] for e in body["extensions"]]
    assert aliases == sorted(aliases) and "os-keypairs" in aliases
    for ext in body["extensions"]:
        assert set(ext) == {"alias", "description", "links", "name", "namespace", "updated"}
    code, body = await demo("GET", "/extensions/os-keypairs")
    assert code == 200 and body["extension"]["name"] == "Keypairs"
    code, body = await demo("GET", "/extensions/os-nope")
    assert code == 404 and "itemNotFound" in body
