"""Nova's network proxies (os-security-groups, os-floating-ips, pools, os-networks) and the
server actions on groups and floating IPs, against real etcd and SQL, at 2.1.

Shown: Nova's shapes; the bad input each refuses (a duplicate group, a bad
port range, a floating IP associated elsewhere, a group in use); their
removal at 2.36 (and of the floating IP actions at 2.44); one project never
sees another's groups.
"""

from __future__ import annotations

from state.store import Store
from tests.conftest import eventually
from tests.integration.test_compute_api import token_of
from tests.integration.test_compute_servers import Nova
from tests.integration.test_identity import cloud  # noqa: F401 -- the fixture
from tests.integration.test_network_reconciler import give_port

RULE_FIELDS = {"from_port", "group", "id", "ip_protocol", "ip_range", "parent_group_id", "to_port"}


async def _server(store: Store, name: str, address: str) -> str:
    """An Instance of demo with a port on ``private`` (as the network reconciler gives it)."""
    inst = await store.create(
        {
            "kind": "Instance",
            "metadata": {"name": name, "project": "demo"},
            "spec": {"flavor": "small", "image": "tiny", "networks": [{"network": "private"}]},
        }
    )
    await give_port(store, inst, "private", address)
    return str(inst["metadata"]["uid"])


async def test_nova_network_proxies(cloud: str, store: Store) -> None:  # noqa: F811
    nova = Nova(cloud, await token_of(cloud, "demo", "demo-secret", "demo"))
    other = Nova(cloud, await token_of(cloud, "other", "other-secret", "other"))
    admin = Nova(cloud, await token_of(cloud, "admin", "admin-secret", "admin"))

    # security groups: the default one appears, a group of its own, rules
    code, body = await nova("GET", "/os-security-groups")
    assert code == 200
    (default,) = body["security_groups"]
    assert default["name"] == "default" and default["rules"] == []
    assert set(default) == {"description", "id", "name", "rules", "tenant_id"}
    assert len(default["tenant_id"]) == 32
    code, made = await nova(
        "POST", "/os-security-groups", {"security_group": {"name": "web", "description": "web"}}
    )
    assert code == 200, made
    web_id = made["security_group"]["id"]
    code, dup = await nova(
        "POST", "/os-security-groups", {"security_group": {"name": "web", "description": "x"}}
    )
    assert code == 400 and "already exists" in dup["badRequest"]["message"]
    rule = {"parent_group_id": web_id, "ip_protocol": "tcp", "from_port": 80, "to_port": 81}
    code, added = await nova(
        "POST", "/os-security-group-rules", {"security_group_rule": {**rule, "cidr": "10.0.0.0/8"}}
    )
    assert code == 200, added
    assert set(added["security_group_rule"]) == RULE_FIELDS
    assert added["security_group_rule"]["ip_range"] == {"cidr": "10.0.0.0/8"}
    code, bad = await nova(
        "POST", "/os-security-group-rules", {"security_group_rule": {**rule, "from_port": 90}}
    )
    assert code == 400 and "portRangeMax" in bad["badRequest"]["message"], bad
    code, again = await nova(
        "POST", "/os-security-group-rules", {"security_group_rule": {**rule, "cidr": "10.0.0.0/8"}}
    )
    assert (code, again["badRequest"]["message"]) == (
        400,
        f"This rule already exists in group {web_id}",
    )
    code, refused = await nova(
        "POST", "/os-security-groups", {"security_group": {"name": "", "description": "d"}}
    )
    assert code == 400 and "badRequest" in refused
    # white space at a name's ends is kept, as Nova with Neutron keeps it
    spaced = {"security_group": {"name": " web servers ", "description": "d"}}
    code, made_spaced = await nova("POST", "/os-security-groups", spaced)
    assert code == 200 and made_spaced["security_group"]["name"] == " web servers ", made_spaced
    spaced_id = made_spaced["security_group"]["id"]
    _, shown = await nova("GET", f"/os-security-groups/{spaced_id}")
    assert shown["security_group"]["name"] == " web servers "
    assert (await nova("DELETE", f"/os-security-groups/{spaced_id}"))[0] == 202
    # a rename keeps the group (its id, its rules); the default group keeps its name
    renamed = {"security_group": {"name": "Web Servers", "description": "the web tier"}}
    code, body = await nova("PUT", f"/os-security-groups/{web_id}", renamed)
    assert code == 200, body
    assert (body["security_group"]["id"], body["security_group"]["name"]) == (web_id, "Web Servers")
    assert [r["from_port"] for r in body["security_group"]["rules"]] == [80]
    _, shown = await nova("GET", f"/os-security-groups/{web_id}")
    assert shown["security_group"]["description"] == "the web tier"
    back = {"security_group": {"name": "web", "description": "web"}}
    assert (await nova("PUT", f"/os-security-groups/{web_id}", back))[0] == 200
    code, refused = await nova(
        "PUT",
        f"/os-security-groups/{default['id']}",
        {"security_group": {"name": "x", "description": ""}},
    )
    assert code == 400 and "default" in refused["badRequest"]["message"]
    assert (await nova("PUT", f"/os-security-groups/{web_id}", {"security_group": {}}))[0] == 400
    assert (await other("PUT", f"/os-security-groups/{web_id}", back))[0] == 404
    # an empty description is allowed (Nova's API reference)
    code, made_empty = await nova(
        "POST", "/os-security-groups", {"security_group": {"name": "quiet", "description": ""}}
    )
    assert code == 200 and made_empty["security_group"]["description"] == ""
    assert (await nova("DELETE", f"/os-security-groups/{made_empty['security_group']['id']}"))[
        0
    ] == 202
    code, refused = await nova("DELETE", f"/os-security-groups/{default['id']}")
    assert (code, refused["badRequest"]["message"]) == (
        400,
        "Removing default security group not allowed.",
    )
    code, shown = await nova("GET", f"/os-security-groups/{web_id}")
    assert [r["from_port"] for r in shown["security_group"]["rules"]] == [80]
    _, theirs = await other("GET", "/os-security-groups")
    assert [g["name"] for g in theirs["security_groups"]] == ["default"]
    assert (await other("GET", f"/os-security-groups/{web_id}"))[0] == 404
    assert (await nova.at("2.36")("GET", "/os-security-groups"))[0] == 404

    # networks and pools
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "private", "project": "demo"},
            "spec": {"cidr": "10.60.0.0/24", "dnsServers": ["10.60.0.2"]},
        }
    )
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "public", "project": "admin"},
            "spec": {"cidr": "203.0.113.0/24", "external": True, "shared": True},
        }
    )
    _, nets = await nova("GET", "/os-networks")
    shown_nets = {n["label"]: n for n in nets["networks"]}
    assert shown_nets["private"]["cidr"] == "10.60.0.0/24"
    assert shown_nets["private"]["gateway"] == "10.60.0.1"
    assert shown_nets["private"]["dns1"] == "10.60.0.2"
    assert "bridge" not in shown_nets["private"]  # admins only
    _, all_nets = await admin("GET", "/os-networks")
    assert len(next(iter(all_nets["networks"]))) == 32  # Nova's every field
    _, pools = await nova("GET", "/os-floating-ip-pools")
    assert pools == {"floating_ip_pools": [{"name": "public"}]}
    _, tenant_nets = await nova("GET", "/os-tenant-networks")
    private = next(n for n in tenant_nets["networks"] if n["label"] == "private")
    assert private == {"id": private["id"], "label": "private", "cidr": "10.60.0.0/24"}
    assert {n["label"] for n in tenant_nets["networks"]} == {"private", "public"}  # shared too
    assert await nova("GET", f"/os-tenant-networks/{private['id']}") == (200, {"network": private})
    assert (await other("GET", f"/os-tenant-networks/{private['id']}"))[0] == 404
    assert (await nova.at("2.36")("GET", "/os-tenant-networks"))[0] == 404
    # without a pool: the default one, the first external network
    for body in ({}, {"pool": None}):
        code, unnamed = await nova("POST", "/os-floating-ips", body)
        assert code == 200 and unnamed["floating_ip"]["pool"] == "public", unnamed
        assert (await nova("DELETE", f"/os-floating-ips/{unnamed['floating_ip']['id']}"))[0] == 202

    # floating IPs and the actions that associate them and groups
    code, fip = await nova("POST", "/os-floating-ips", {"pool": "public"})
    assert code == 200, fip
    address = fip["floating_ip"]["ip"]
    assert address.startswith("203.0.113.") and fip["floating_ip"]["instance_id"] is None
    uid = await _server(store, "vm", "10.60.0.10")
    uid2 = await _server(store, "vm2", "10.60.0.11")

    async def known(sid: str) -> bool:
        return (await nova("GET", f"/servers/{sid}"))[0] == 200

    await eventually(lambda: known(uid2))
    code, _ = await nova("POST", f"/servers/{uid}/action", {"addFloatingIp": {"address": address}})
    assert code == 202
    _, listed = await nova("GET", "/os-floating-ips")
    (one,) = listed["floating_ips"]
    assert (one["instance_id"], one["fixed_ip"], one["pool"]) == (uid, "10.60.0.10", "public")
    _, shown = await nova("GET", f"/servers/{uid}")
    kinds = [(a["addr"], a["OS-EXT-IPS:type"]) for a in shown["server"]["addresses"]["private"]]
    assert kinds == [("10.60.0.10", "fixed"), (address, "floating")]
    _, detail = await nova("GET", "/servers/detail")
    (listed_vm,) = [s for s in detail["servers"] if s["id"] == uid]
    assert listed_vm["addresses"] == shown["server"]["addresses"]
    code, taken = await nova(
        "POST", f"/servers/{uid2}/action", {"addFloatingIp": {"address": address}}
    )
    assert code == 409 and "associated" in taken["conflictingRequest"]["message"], taken
    assert (
        await nova.at("2.44")(
            "POST", f"/servers/{uid}/action", {"addFloatingIp": {"address": address}}
        )
    )[0] == 400
    code, _ = await nova("POST", f"/servers/{uid}/action", {"addSecurityGroup": {"name": "web"}})
    assert code == 202
    _, groups = await nova("GET", f"/servers/{uid}/os-security-groups")
    assert [g["name"] for g in groups["security_groups"]] == ["default", "web"]
    code, busy = await nova("DELETE", f"/os-security-groups/{web_id}")
    assert code == 400 and "in use" in busy["badRequest"]["message"]
    code, missing = await nova(
        "POST", f"/servers/{uid}/action", {"addSecurityGroup": {"name": "nope"}}
    )
    assert code == 404, missing
    assert (await nova("POST", f"/servers/{uid}/action", {"removeSecurityGroup": {"name": "web"}}))[
        0
    ] == 202
    assert (await nova("DELETE", f"/os-security-groups/{web_id}"))[0] == 202
    assert (
        await nova("POST", f"/servers/{uid}/action", {"removeFloatingIp": {"address": address}})
    )[0] == 202
    assert (await nova("DELETE", f"/os-floating-ips/{fip['floating_ip']['id']}"))[0] == 202
    _, left = await nova("GET", "/os-floating-ips")
    assert left == {"floating_ips": []}

    # a pool with room for one address: the second is Nova's 404
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "tiny-pool", "project": "admin"},
            "spec": {"cidr": "198.51.100.0/30", "external": True},
        }
    )
    assert (await nova("POST", "/os-floating-ips", {"pool": "tiny-pool"}))[0] == 200
    code, none_left = await nova("POST", "/os-floating-ips", {"pool": "tiny-pool"})
    assert code == 404 and "No more floating IPs" in none_left["itemNotFound"]["message"]
