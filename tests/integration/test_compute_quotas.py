"""Quotas through the Compute API: limits, admins' updates, race-free enforcement, release."""

from __future__ import annotations

import asyncio

from apiserver.compute.create_batches import CreateBatches
from state import quota
from state.envelope import Ref
from state.errors import AlreadyExists
from state.store import Store
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_hostd import flavor_and_image
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture


async def test_quotas_are_enforced_race_free(cloud: str, store: Store) -> None:  # noqa: F811
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "small"},
            "spec": {"vcpus": 1, "ramMiB": 256, "diskGiB": 1},
        }
    )
    image = await store.create(
        {"kind": "Image", "metadata": {"name": "tiny"}, "spec": {"visibility": "public"}}
    )
    demo = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    admin = Nova(cloud, await token_of(cloud, "admin", "admin-secret", "admin"))
    project = await store.get(Ref("Project", None, "demo"))
    pid = project["metadata"]["uid"].replace("-", "")

    code, body = await demo("GET", "/limits")
    absolute = body["limits"]["absolute"]
    assert (absolute["maxTotalInstances"], absolute["totalInstancesUsed"]) == (10, 0)
    code, body = await demo("GET", f"/os-quota-sets/{pid}")
    assert code == 200 and body["quota_set"]["instances"] == 10 and body["quota_set"]["id"] == pid
    code, _ = await demo("PUT", f"/os-quota-sets/{pid}", {"quota_set": {"instances": 50}})
    assert code == 403
    admin_pid = (await store.get(Ref("Project", None, "admin")))["metadata"]["uid"].replace("-", "")
    code, _ = await demo("GET", f"/os-quota-sets/{admin_pid}")
    assert code == 403

    code, body = await admin("PUT", f"/os-quota-sets/{pid}", {"quota_set": {"instances": 5}})
    assert code == 200 and body["quota_set"]["instances"] == 5 and "id" not in body["quota_set"]

    def server(name: str) -> dict:
        return {
            "server": {"name": name, "imageRef": image["metadata"]["uid"], "flavorRef": "small"}
        }

    # ten racing creates against room for five: exactly five pass
    results = await asyncio.gather(*(demo("POST", "/servers", server(f"vm{i}")) for i in range(10)))
    codes = sorted(code for code, _ in results)
    assert codes == [202] * 5 + [403] * 5, codes
    refused = next(body for code, body in results if code == 403)
    assert refused["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 1, but already used 5 of 5 instances"
    )
    used, _ = await quota.usage(store, "demo")
    assert used == {"instances": 5, "cores": 5, "ram": 1280}
    assert len((await store.list("Instance", "demo")).items) == 5

    _, body = await demo("GET", f"/os-quota-sets/{pid}/detail")
    assert body["quota_set"]["instances"] == {"in_use": 5, "limit": 5, "reserved": 0}
    # a delete gives the room back at once (no host here: the object stays, deleting)
    sid = next(b["server"]["id"] for code, b in results if code == 202)
    code, _ = await demo("DELETE", f"/servers/{sid}")
    assert code == 204
    code, _ = await demo("DELETE", f"/servers/{sid}")  # again: nothing released twice
    assert code == 204
    assert (await quota.usage(store, "demo"))[0]["instances"] == 4
    code, _ = await demo("POST", "/servers", server("vm-late"))
    assert code == 202

    code, _ = await admin("DELETE", f"/os-quota-sets/{pid}")
    assert code == 202
    _, body = await demo("GET", f"/os-quota-sets/{pid}")
    assert body["quota_set"]["instances"] == 10
    _, body = await demo("GET", f"/os-quota-sets/{pid}/defaults")
    assert body["quota_set"]["cores"] == 20


def _instance(name: str) -> dict:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "project": "p"},
        "spec": {"flavor": "small", "image": "tiny"},
    }


async def test_creates_committed_together_answer_each_alone(store: Store) -> None:
    """Creates that meet are one transaction; a taken name or the quota fails only its own."""
    batches = CreateBatches(store)
    size = {"instances": 1, "cores": 1, "ram": 64}
    await store.create(_instance("taken"))
    names = ("taken", "a", "b")
    results = await asyncio.gather(
        *(batches.create("p", _instance(n), size) for n in names), return_exceptions=True
    )
    assert isinstance(results[0], AlreadyExists)
    assert [r["metadata"]["name"] for r in results[1:]] == ["a", "b"]  # type: ignore[index]
    assert (await quota.usage(store, "p"))[0] == {"instances": 2, "cores": 2, "ram": 128}
    # room for three more: of five that meet, the first three in line get it
    await store.create(
        {
            "kind": "Quota",
            "metadata": {"name": "default", "project": "p"},
            "spec": {"limits": {"instances": 5}},
        }
    )
    results = await asyncio.gather(
        *(batches.create("p", _instance(n), size) for n in "cdefg"), return_exceptions=True
    )
    assert [type(r).__name__ for r in results] == ["dict"] * 3 + ["QuotaExceeded"] * 2
    assert (await quota.usage(store, "p"))[0]["instances"] == 5
    assert len((await store.list("Instance", "p")).items) == 6  # with "taken", made directly


async def test_admins_set_the_default_quotas(cloud: str, store: Store) -> None:  # noqa: F811
    demo = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    admin = Nova(cloud, await token_of(cloud, "admin", "admin-secret", "admin"))
    code, body = await admin("GET", "/os-quota-class-sets/default")
    assert code == 200 and body["quota_class_set"]["instances"] == 10
    assert "server_groups" not in body["quota_class_set"]  # not in 2.1's class view
    code, body = await admin(
        "PUT", "/os-quota-class-sets/default", {"quota_class_set": {"instances": 2}}
    )
    assert (
        code == 200
        and body["quota_class_set"]["instances"] == 2
        and "id" not in body["quota_class_set"]
    )
    assert (
        await demo("PUT", "/os-quota-class-sets/default", {"quota_class_set": {"instances": 9}})
    )[0] == 403
    code, _ = await admin("PUT", "/os-quota-class-sets/default", {"quota_class_set": {"bogus": 1}})
    assert code == 400
    demo_id = (await store.get(Ref("Project", None, "demo")))["metadata"]["uid"].replace("-", "")
    per_user = {"quota_set": {"ram": 2048}}
    code, body = await admin("PUT", f"/os-quota-sets/{demo_id}?user_id=u1", per_user)
    assert code == 400 and "Per-user quotas" in body["badRequest"]["message"]
    # as Tempest's test_update_default_quotas: every field raised, each one kept
    _, body = await admin("GET", "/os-quota-class-sets/default")
    assert body["quota_class_set"].pop("id") == "default"
    raised = {k: v + 100 for k, v in body["quota_class_set"].items()}
    code, body = await admin("PUT", "/os-quota-class-sets/default", {"quota_class_set": raised})
    assert code == 200 and body["quota_class_set"] == raised
    _, body = await admin("GET", "/os-quota-class-sets/default")
    assert body["quota_class_set"] == {"id": "default", **raised}
    back = {**raised, "instances": 2}
    back = {k: v - 100 if k != "instances" else v for k, v in back.items()}
    assert (await admin("PUT", "/os-quota-class-sets/default", {"quota_class_set": back}))[0] == 200
    pid = (await store.get(Ref("Project", None, "demo")))["metadata"]["uid"].replace("-", "")
    _, body = await demo("GET", f"/os-quota-sets/{pid}/defaults")
    assert body["quota_set"]["instances"] == 2
    # every project without limits of its own gets the new default
    await flavor_and_image(store)
    image_id = (await store.get(Ref("Image", None, "tiny")))["metadata"]["uid"]
    codes = []
    for i in range(3):
        server = {"name": f"vm{i}", "imageRef": image_id, "flavorRef": "small"}
        codes.append((await demo("POST", "/servers", {"server": server}))[0])
    assert codes == [202, 202, 403]
