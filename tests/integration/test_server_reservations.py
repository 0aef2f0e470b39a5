"""A create with ``return_reservation_id`` is answered with the reservation id of the
servers it made, which their admin view shows, as Nova's."""

from __future__ import annotations

from state.store import Store
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture


async def test_create_returns_the_reservation_id(cloud: str, store: Store) -> None:  # noqa: F811
    demo = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    admin = Nova(cloud, await token_of(cloud, "admin", "admin-secret", "admin"))
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
        "name": "many",
        "flavorRef": "small",
        "imageRef": image["metadata"]["uid"],
        "min_count": 1,
        "max_count": 2,
        "return_reservation_id": "True",
    }
    code, body = await demo("POST", "/servers", {"server": server})
    assert code == 202 and set(body) == {"reservation_id"}, body
    reservation = body["reservation_id"]
    _, listed = await admin.at("2.3")("GET", "/servers/detail?all_tenants=1")
    made = [s for s in listed["servers"] if s["name"].startswith("many")]
    assert len(made) == 2
    assert {s["OS-EXT-SRV-ATTR:reservation_id"] for s in made} == {reservation}
