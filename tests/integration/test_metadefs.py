"""Glance's metadata definitions through HTTP: namespaces (protected, private), their
objects, properties, tags and resource type associations, written by admins alone."""

from __future__ import annotations

from pathlib import Path

from state.store import Store
from tests.integration.test_compute_api import token_of
from tests.integration.test_identity import api_cloud
from tests.integration.test_image_service import Glance


async def test_namespaces_and_their_definitions(store: Store, tmp_path: Path) -> None:
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    async with api_cloud(store, sql_url) as base:
        demo = Glance(base, await token_of(base, "demo", "demo-secret", "demo"))
        admin = Glance(base, await token_of(base, "admin", "admin-secret", "admin"))
        types = (await demo("GET", "/metadefs/resource_types"))[1]["resource_types"]
        assert "OS::Glance::Image" in [t["name"] for t in types]

        name = "OS::Test::Disk"
        made = {
            "namespace": name,
            "visibility": "public",
            "protected": True,
            "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}],
        }
        assert (await demo("POST", "/metadefs/namespaces", made))[0] == 403
        code, ns, _ = await admin("POST", "/metadefs/namespaces", made)
        assert (code, ns["namespace"], ns["protected"]) == (201, name, True)
        assert (await admin("POST", "/metadefs/namespaces", made))[0] == 409
        listed = (await demo("GET", "/metadefs/namespaces"))[1]["namespaces"]
        assert [n["namespace"] for n in listed] == [name]
        path = f"/metadefs/namespaces/{name}"
        assert (await admin("DELETE", path))[0] == 403  # protected

        # objects, properties, tags, resource types
        code, obj, _ = await admin("POST", path + "/objects", {"name": "disk"})
        assert (code, obj["name"]) == (201, "disk")
        code, obj, _ = await admin("PUT", path + "/objects/disk", {"name": "drive"})
        assert (code, obj["name"]) == (200, "drive")
        assert [o["name"] for o in (await demo("GET", path + "/objects"))[1]["objects"]] == [
            "drive"
        ]
        prop = {"name": "hw_disk_bus", "title": "Bus", "type": "string", "enum": ["virtio"]}
        assert (await admin("POST", path + "/properties", {"name": "x"}))[0] == 400
        assert (await admin("POST", path + "/properties", prop))[0] == 201
        props = (await demo("GET", path + "/properties"))[1]["properties"]
        assert props["hw_disk_bus"]["title"] == "Bus"
        tags = {"tags": [{"name": "a"}, {"name": "b"}]}
        assert (await admin("POST", path + "/tags", tags))[0] == 201
        assert (await admin("POST", path + "/tags/c"))[0] == 201
        assert (await admin("PUT", path + "/tags/c", {"name": "d"}))[1]["name"] == "d"
        shown = [t["name"] for t in (await demo("GET", path + "/tags"))[1]["tags"]]
        assert shown == ["a", "b", "d"]
        assert (await admin("DELETE", path + "/tags"))[0] == 204
        assert (await demo("GET", path + "/tags"))[1]["tags"] == []
        assert (await admin("DELETE", path + "/tags/a"))[0] == 404
        assert (await admin("POST", path + "/resource_types", {"name": "OS::Nova::Flavor"}))[
            0
        ] == 201
        assert (await admin("POST", path + "/resource_types", {"name": "OS::Cinder::Volume"}))[
            0
        ] == 400
        assert (await admin("DELETE", path + "/resource_types/OS::Glance::Image"))[0] == 204
        associations = (await demo("GET", path + "/resource_types"))[1]
        assert [a["name"] for a in associations["resource_type_associations"]] == [
            "OS::Nova::Flavor"
        ]

        # private: hidden from other projects; unprotected: deleted
        private = {"namespace": name, "visibility": "private", "protected": False}
        code, ns, _ = await admin("PUT", path, private)
        assert (code, ns["visibility"], ns["objects"][0]["name"]) == (200, "private", "drive")
        assert (await demo("GET", path))[0] == 404
        assert (await admin("DELETE", path))[0] == 204
        assert (await admin("GET", path))[0] == 404
