"""The unmodified `openstack` CLI against `desired up` (simulated host), as a Nova user would.

`desired up` writes clouds.yaml with the `desired-demo` entry; the user
sources its env file and runs `openstack --os-cloud desired-demo ...`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.up_process import BIN, Up


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    u = Up(tmp_path / "desired", "--simulate", "1")
    try:
        yield u
    finally:
        if u.proc.poll() is None:
            u.stop()


def openstack(
    up: Up, *args: str, cloud: str | None = "desired-demo"
) -> subprocess.CompletedProcess[str]:
    """``openstack`` as a user who sourced ``up``'s env file, logged in as ``cloud`` (of its
    clouds.yaml), or (None) as ``args`` say."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "DESIRED_"))}
    for line in (up.data_dir / "env").read_text().splitlines():
        m = re.match(r"export (\w+)=(.*)", line)
        if m:
            env[m.group(1)] = m.group(2).strip("'")
    return subprocess.run(
        [str(BIN / "openstack"), *(("--os-cloud", cloud) if cloud else ()), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def server_create(up: Up, name: str, *options: str) -> dict[str, Any]:
    """``openstack server create`` of an m1.tiny server of image tiny, waited for."""
    args = ("server", "create", "--flavor", "m1.tiny", "--image", "tiny", *options)
    created: dict[str, Any] = json.loads(ok(openstack(up, *args, "--wait", "-f", "json", name)))
    return created


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_openstack_cli_first_try(up: Up) -> None:
    flavors = json.loads(ok(openstack(up, "flavor", "list", "-f", "json")))
    assert {"m1.tiny", "m1.small"} <= {f["Name"] for f in flavors}
    images = json.loads(ok(openstack(up, "image", "list", "-f", "json")))
    assert "tiny" in {i["Name"] for i in images}

    server = server_create(up, "vm1")
    assert server["status"] == "ACTIVE" and server["name"] == "vm1"
    listed = json.loads(ok(openstack(up, "server", "list", "-f", "json")))
    assert {s["Name"]: s["Status"] for s in listed}["vm1"] == "ACTIVE"
    assert {s["Name"]: s["Image"] for s in listed}["vm1"] == "tiny"

    ok(openstack(up, "server", "stop", "vm1"))
    deadline = time.monotonic() + 30
    while ok(openstack(up, "server", "show", "vm1", "-f", "value", "-c", "status")).strip() != (
        "SHUTOFF"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    again = openstack(up, "server", "stop", "vm1")  # Nova refuses: it is stopped already
    assert again.returncode != 0 and "409" in again.stderr
    events = json.loads(ok(openstack(up, "server", "event", "list", "vm1", "-f", "json")))
    assert [e["Action"] for e in events] == ["stop", "create"]

    ok(openstack(up, "server", "delete", "--wait", "vm1"))
    names = {s["Name"] for s in json.loads(ok(openstack(up, "server", "list", "-f", "json")))}
    assert "vm1" not in names
    token = json.loads(ok(openstack(up, "token", "issue", "-f", "json")))
    assert token["project_id"] and token["user_id"]


def test_openstack_cli_keypairs_and_zones(up: Up, tmp_path: Path) -> None:
    private = ok(openstack(up, "keypair", "create", "k1"))
    assert private.startswith("-----BEGIN")  # OSC makes the key itself and imports it
    pub = tmp_path / "k2.pub"
    pub.write_text(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
        " me@desired\n"
    )
    ok(openstack(up, "keypair", "create", "--public-key", str(pub), "k2"))
    pairs = json.loads(ok(openstack(up, "keypair", "list", "-f", "json")))
    assert sorted(p["Name"] for p in pairs) == ["k1", "k2"]
    shown = json.loads(ok(openstack(up, "keypair", "show", "k2", "-f", "json")))
    assert shown["fingerprint"].count(":") == 15
    dup = openstack(up, "keypair", "create", "--public-key", str(pub), "k2")
    assert dup.returncode != 0 and "409" in dup.stderr
    ok(openstack(up, "keypair", "delete", "k1", "k2"))
    assert json.loads(ok(openstack(up, "keypair", "list", "-f", "json"))) == []
    zones = json.loads(ok(openstack(up, "availability", "zone", "list", "-f", "json")))
    assert [(z["Zone Name"], z["Zone Status"]) for z in zones] == [("nova", "available")]


def test_openstacksdk_creates_waits_and_deletes(up: Up, monkeypatch: pytest.MonkeyPatch) -> None:
    import openstack as sdk

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(up.data_dir / "clouds.yaml"))
    conn = sdk.connect(cloud="desired-demo")
    try:
        flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
        image = conn.image.find_image("tiny", ignore_missing=False)
        server = conn.compute.create_server(
            name="sdk1", flavor_id=flavor.id, image_id=image.id, networks=[]
        )
        server = conn.compute.wait_for_server(server, status="ACTIVE", wait=60)
        # at 2.47 and later the server embeds its flavor (by name, sizes and extra specs)
        assert server.status == "ACTIVE" and server.flavor["original_name"] == flavor.name
        assert server.flavor["vcpus"] == flavor.vcpus
        assert "sdk1" in [s.name for s in conn.compute.servers()]
        conn.compute.stop_server(server)
        conn.compute.wait_for_server(server, status="SHUTOFF", wait=60)
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=60)
        assert "sdk1" not in [s.name for s in conn.compute.servers()]
    finally:
        conn.close()


def test_openstack_cli_quotas_and_limits(up: Up) -> None:
    limits = json.loads(ok(openstack(up, "limits", "show", "--absolute", "-f", "json")))
    assert {x["Name"]: x["Value"] for x in limits}["instances"] == 10
    ok(openstack(up, "quota", "set", "--instances", "3", "demo", cloud="desired-admin"))
    shown = json.loads(
        ok(openstack(up, "quota", "show", "demo", "-f", "json", cloud="desired-admin"))
    )
    values = {x["Resource"]: x["Limit"] for x in shown} if isinstance(shown, list) else shown
    assert values["instances"] == 3
    denied = openstack(up, "quota", "set", "--instances", "30", "demo")
    assert denied.returncode != 0 and "403" in denied.stderr


def test_openstack_cli_admin_hosts(up: Up) -> None:
    """Hypervisors, compute services and aggregates, as an admin runs them."""

    def admin(*args: str) -> str:
        return ok(openstack(up, *args, cloud="desired-admin"))

    deadline = time.monotonic() + 10
    while True:  # the conductor projects the host a moment after it registered
        listed = json.loads(admin("hypervisor", "list", "-f", "json"))
        if (listed and listed[0]["State"] == "up") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    (hyp,) = listed
    host = hyp["Hypervisor Hostname"]
    assert hyp["State"] == "up"
    shown = json.loads(admin("hypervisor", "show", host, "-f", "json"))
    assert shown["state"] == "up" and shown["vcpus"] > 0
    denied = openstack(up, "hypervisor", "list")
    assert denied.returncode != 0 and "403" in denied.stderr

    admin(
        "compute",
        "service",
        "set",
        "--disable",
        "--disable-reason",
        "maintenance",
        host,
        "nova-compute",
    )
    (svc,) = json.loads(admin("compute", "service", "list", "--long", "-f", "json"))
    assert (svc["Binary"], svc["Host"], svc["Status"], svc["Disabled Reason"]) == (
        "nova-compute",
        host,
        "disabled",
        "maintenance",
    )
    admin("compute", "service", "set", "--enable", host, "nova-compute")
    (svc,) = json.loads(admin("compute", "service", "list", "-f", "json"))
    assert (svc["Status"], svc["State"]) == ("enabled", "up")

    admin("aggregate", "create", "--zone", "london", "Fast Hosts")
    admin("aggregate", "add", "host", "Fast Hosts", host)
    admin("aggregate", "set", "--property", "ssd=true", "Fast Hosts")
    agg = json.loads(admin("aggregate", "show", "Fast Hosts", "-f", "json"))
    assert (agg["hosts"], agg["properties"], agg["availability_zone"]) == (
        [host],
        {"ssd": "true"},
        "london",
    )
    deadline = time.monotonic() + 10
    while "london" not in {
        z["Zone Name"] for z in json.loads(admin("availability", "zone", "list", "-f", "json"))
    }:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # usage: the demo instance `desired up` made has been running
    usages = json.loads(admin("usage", "list", "-f", "json"))
    assert any(u["Servers"] for u in usages) and all(u["CPU Hours"] >= 0 for u in usages)
    admin("aggregate", "remove", "host", "Fast Hosts", host)
    admin("aggregate", "delete", "Fast Hosts")
    assert json.loads(admin("aggregate", "list", "-f", "json")) == []


def test_openstack_cli_flavors(up: Up) -> None:
    """An admin makes a private flavor with properties for the demo project, which then sees
    it; a member may not make one."""

    def admin(*args: str) -> str:
        return ok(openstack(up, *args, cloud="desired-admin"))

    denied = openstack(up, "flavor", "create", "--ram", "256", "--vcpus", "1", "f1")
    assert denied.returncode != 0 and "403" in denied.stderr
    admin("flavor", "create", "--ram", "256", "--vcpus", "1", "--disk", "1", "--private", "f1")
    admin("flavor", "set", "--property", "hw:cpu_policy=shared", "f1")
    admin("flavor", "set", "--project", "demo", "f1")
    shown = json.loads(admin("flavor", "show", "f1", "-f", "json"))
    assert shown["properties"] == {"hw:cpu_policy": "shared"}
    assert shown["os-flavor-access:is_public"] is False
    assert len(shown["access_project_ids"]) == 1
    names = [
        f["Name"] for f in json.loads(ok(openstack(up, "flavor", "list", "--all", "-f", "json")))
    ]
    assert "f1" in names
    admin("flavor", "unset", "--property", "hw:cpu_policy", "f1")
    admin("flavor", "delete", "f1")
    names = [f["Name"] for f in json.loads(admin("flavor", "list", "--all", "-f", "json"))]
    assert "f1" not in names


def test_openstack_cli_images_and_server_groups(up: Up, tmp_path: Path) -> None:
    """A member uploads an image, lists, shows, saves and deletes it; makes, shows and
    deletes a server group."""
    data = tmp_path / "disk.raw"
    data.write_bytes(os.urandom(300_000))
    made = json.loads(
        ok(
            openstack(
                up,
                *("image", "create", "--file", str(data), "--disk-format", "raw"),
                *("--container-format", "bare", "-f", "json", "My Disk"),
            )
        )
    )
    assert made["status"] == "active" and made["size"] == 300_000
    names = [i["Name"] for i in json.loads(ok(openstack(up, "image", "list", "-f", "json")))]
    assert "My Disk" in names and "tiny" in names
    saved = tmp_path / "saved.raw"
    ok(openstack(up, "image", "save", "--file", str(saved), "My Disk"))
    assert saved.read_bytes() == data.read_bytes()
    denied = openstack(up, "image", "create", "--public", "--file", str(data), "pub")
    assert denied.returncode != 0 and "403" in denied.stderr
    ok(openstack(up, "image", "delete", "My Disk"))
    names = [i["Name"] for i in json.loads(ok(openstack(up, "image", "list", "-f", "json")))]
    assert "My Disk" not in names

    group = json.loads(
        ok(
            openstack(
                up, "server", "group", "create", "--policy", "anti-affinity", "-f", "json", "g1"
            )
        )
    )
    assert "anti-affinity" in str(group.get("policies", group.get("policy")))
    shown = json.loads(ok(openstack(up, "server", "group", "show", "-f", "json", "g1")))
    assert shown["id"] == group["id"]
    listed = json.loads(ok(openstack(up, "server", "group", "list", "-f", "json")))
    assert [g["Name"] for g in listed] == ["g1"]
    ok(openstack(up, "server", "group", "delete", "g1"))
    assert json.loads(ok(openstack(up, "server", "group", "list", "-f", "json"))) == []


def fails(res: subprocess.CompletedProcess[str], *words: str) -> str:
    assert res.returncode != 0, res.stdout
    for word in words:
        assert word in res.stderr, res.stderr
    return res.stderr


def test_openstack_cli_networks_security_groups_and_floating_ips(up: Up) -> None:
    """`openstack network/subnet/security group/floating ip` through the Neutron subset."""
    nets = json.loads(ok(openstack(up, "network", "list", "-f", "json")))
    assert "default" in {n["Name"] for n in nets}  # desired up's demo network
    ok(openstack(up, "network", "create", "net2"))
    sub = json.loads(
        ok(
            openstack(
                up,
                "subnet",
                "create",
                "--network",
                "net2",
                "--subnet-range",
                "10.50.0.0/24",
                "-f",
                "json",
                "sub2",
            )
        )
    )
    assert sub["cidr"] == "10.50.0.0/24" and sub["gateway_ip"] == "10.50.0.1"
    ok(openstack(up, "network", "create", "net3"))
    fails(
        openstack(
            up, "subnet", "create", "--network", "net3", "--subnet-range", "10.50.0.128/25", "sub3"
        ),
        "overlaps",
    )

    # security groups: the project's default, a rule, a bad port range, a group of its own
    rule = json.loads(
        ok(
            openstack(
                up,
                "security",
                "group",
                "rule",
                "create",
                "--protocol",
                "icmp",
                "-f",
                "json",
                "default",
            )
        )
    )
    assert rule["protocol"] == "icmp" and rule["direction"] == "ingress"
    bad = ("--protocol", "tcp", "--dst-port", "70000")  # (OSC refuses 30:20 itself)
    fails(openstack(up, "security", "group", "rule", "create", *bad, "default"), "65535")
    ok(openstack(up, "security", "group", "create", "web"))
    ok(
        openstack(
            up,
            "security",
            "group",
            "rule",
            "create",
            "--protocol",
            "tcp",
            "--dst-port",
            "80",
            "web",
        )
    )
    rules = json.loads(ok(openstack(up, "security", "group", "rule", "list", "web", "-f", "json")))
    assert [r["Port Range"] for r in rules if r["IP Protocol"] == "tcp"] == ["80:80"]

    # a server on net2 with group web, then a floating IP from an admin's external network
    server = server_create(up, "vm-net", "--network", "net2", "--security-group", "web")
    assert "10.50.0." in str(server["addresses"])
    ok(openstack(up, "network", "create", "--external", "--share", "public", cloud="desired-admin"))
    ok(
        openstack(
            up,
            "subnet",
            "create",
            "--network",
            "public",
            "--subnet-range",
            "203.0.113.0/24",
            "public-sub",
            cloud="desired-admin",
        )
    )
    admin = {"cloud": "desired-admin"}
    ok(openstack(up, "network", "create", "--external", "--share", "tiny-pool", **admin))
    ok(
        openstack(
            up,
            "subnet",
            "create",
            "--network",
            "tiny-pool",
            "--subnet-range",
            "198.51.100.0/30",
            "tiny-sub",
            **admin,
        )
    )
    ok(openstack(up, "floating", "ip", "create", "tiny-pool"))
    fails(openstack(up, "floating", "ip", "create", "tiny-pool"), "No more IP addresses")
    fip = json.loads(ok(openstack(up, "floating", "ip", "create", "-f", "json", "public")))
    address = fip["floating_ip_address"]
    assert address.startswith("203.0.113.")
    ok(openstack(up, "server", "add", "floating", "ip", "vm-net", address))
    listed = json.loads(ok(openstack(up, "floating", "ip", "list", "-f", "json")))
    mapped = {f["Floating IP Address"]: f["Fixed IP Address"] for f in listed}
    assert mapped[address].startswith("10.50.0.")
    shown = json.loads(ok(openstack(up, "server", "show", "-f", "json", "vm-net")))
    assert address in str(shown["addresses"])  # beside its fixed address, as Nova shows it
    server_create(up, "vm-other", "--network", "net2")
    fails(openstack(up, "server", "add", "floating", "ip", "vm-other", address), "associated")
    fails(openstack(up, "network", "delete", "net2"), "in use")
    fails(openstack(up, "security", "group", "delete", "web"), "in use")
    ok(openstack(up, "server", "remove", "floating", "ip", "vm-net", address))
    ok(openstack(up, "floating", "ip", "delete", address))
    ok(openstack(up, "server", "delete", "--wait", "vm-net", "vm-other"))
    ok(openstack(up, "security", "group", "delete", "web"))
    ok(openstack(up, "subnet", "delete", "sub2"))
    ok(openstack(up, "network", "delete", "net2"))
    names = {n["Name"] for n in json.loads(ok(openstack(up, "network", "list", "-f", "json")))}
    assert "net2" not in names and "public" in names


def test_openstack_cli_identity_admin(up: Up) -> None:
    """Projects, users, roles, role assignments and domains through `openstack`, as an admin
    makes a tenant and its user, who logs in, changes its own password, and makes
    application and EC2 credentials."""

    def admin(*args: str) -> str:
        return ok(openstack(up, *args, cloud="desired-admin"))

    def as_u1(password: str, *args: str) -> subprocess.CompletedProcess[str]:
        login = ("--os-username", "u1", "--os-password", password, "--os-project-name", "p1")
        return openstack(up, *login, *args)

    made = json.loads(admin("project", "create", "--description", "first", "p1", "-f", "json"))
    assert (made["name"], made["description"], made["enabled"]) == ("p1", "first", True)
    fails(openstack(up, "project", "create", "p1", cloud="desired-admin"), "409")
    fails(openstack(up, "project", "create", "p2"), "403")  # demo is no admin
    admin("project", "set", "--disable", "--description", "second", "p1")
    shown = json.loads(admin("project", "show", "p1", "-f", "json"))
    assert (shown["id"], shown["description"], shown["enabled"]) == (made["id"], "second", False)
    names = {p["Name"] for p in json.loads(admin("project", "list", "-f", "json"))}
    assert {"admin", "demo", "p1"} <= names
    admin("project", "set", "--enable", "p1")

    create = ("user", "create", "--password", "pw-one", "--project", "p1")
    user = json.loads(admin(*create, "--email", "u1@example.org", "u1", "-f", "json"))
    assert (user["name"], user["default_project_id"]) == ("u1", made["id"])
    fails(openstack(up, "user", "list"), "403")
    admin("user", "set", "--description", "the first user", "u1")
    shown = json.loads(admin("user", "show", "u1", "-f", "json"))
    assert (shown["email"], shown["description"]) == ("u1@example.org", "the first user")
    assert "u1" in {u["Name"] for u in json.loads(admin("user", "list", "-f", "json"))}

    admin("role", "create", "auditor")
    roles = {r["Name"] for r in json.loads(admin("role", "list", "-f", "json"))}
    assert {"admin", "member", "reader", "service", "auditor"} <= roles
    fails(as_u1("pw-one", "token", "issue"), "401")  # no role on p1 yet
    admin("role", "add", "--user", "u1", "--project", "p1", "member")
    admin("role", "add", "--user", "u1", "--project", "p1", "auditor")
    rows = json.loads(
        admin(
            "role", "assignment", "list", "--names", "--user", "u1", "--project", "p1", "-f", "json"
        )
    )
    assert sorted((r["Role"], r["User"], r["Project"]) for r in rows) == [
        ("auditor", "u1@Default", "p1@Default"),
        ("member", "u1@Default", "p1@Default"),
    ]
    token = json.loads(ok(as_u1("pw-one", "token", "issue", "-f", "json")))
    assert token["project_id"] == made["id"] and token["user_id"] == user["id"]
    change = ("user", "password", "set", "--password", "pw-two", "--original-password", "pw-one")
    ok(as_u1("pw-one", *change))
    fails(as_u1("pw-one", "token", "issue"), "401")
    ok(as_u1("pw-two", "token", "issue"))

    # an application credential of u1's, logged in with, deleted
    cred = json.loads(
        ok(as_u1("pw-two", "application", "credential", "create", "ci", "-f", "json"))
    )
    assert cred["Project ID"] == made["id"] and cred["Secret"]
    listed = json.loads(ok(as_u1("pw-two", "application", "credential", "list", "-f", "json")))
    assert [c["Name"] for c in listed] == ["ci"]
    auth_url = yaml.safe_load((up.data_dir / "clouds.yaml").read_text())["clouds"]["desired-demo"][
        "auth"
    ]["auth_url"]
    options = {
        "--os-auth-url": auth_url,
        "--os-auth-type": "v3applicationcredential",
        "--os-application-credential-id": cred["ID"],
        "--os-application-credential-secret": cred["Secret"],
    }
    by_cred = [word for option in options.items() for word in option]
    issued = json.loads(ok(openstack(up, *by_cred, "token", "issue", "-f", "json", cloud=None)))
    assert issued["project_id"] == made["id"]
    ok(as_u1("pw-two", "application", "credential", "delete", "ci"))
    fails(openstack(up, *by_cred, "token", "issue", cloud=None), "401")

    # EC2 credentials of u1's for p1
    ec2 = json.loads(ok(as_u1("pw-two", "ec2", "credentials", "create", "-f", "json")))
    assert ec2["project_id"] == made["id"] and ec2["secret"]
    listed = json.loads(ok(as_u1("pw-two", "ec2", "credentials", "list", "-f", "json")))
    assert [c["Access"] for c in listed] == [ec2["access"]]
    ok(as_u1("pw-two", "ec2", "credentials", "delete", ec2["access"]))
    assert json.loads(ok(as_u1("pw-two", "ec2", "credentials", "list", "-f", "json"))) == []

    admin("role", "remove", "--user", "u1", "--project", "p1", "auditor")
    admin("role", "delete", "auditor")
    rows = json.loads(admin("role", "assignment", "list", "--user", "u1", "-f", "json"))
    assert [r["Role"] for r in rows] == [
        json.loads(admin("role", "show", "member", "-f", "json"))["id"]
    ]
    fails(openstack(up, "role", "delete", "member", cloud="desired-admin"), "403")

    domains = json.loads(admin("domain", "list", "-f", "json"))
    assert [(d["ID"], d["Name"]) for d in domains] == [("default", "Default")]
    assert json.loads(ok(openstack(up, "domain", "show", "default", "-f", "json")))["name"] == (
        "Default"
    )

    # Keystone's names are free text, and change
    mine = json.loads(admin("project", "create", "My Project", "-f", "json"))
    assert mine["name"] == "My Project"
    admin("project", "set", "--name", "Our Project", "My Project")
    assert json.loads(admin("project", "show", mine["id"], "-f", "json"))["name"] == "Our Project"
    admin("project", "delete", "Our Project")

    admin("user", "delete", "u1")
    fails(as_u1("pw-two", "token", "issue"), "401")
    admin("project", "delete", "p1")
    assert "p1" not in {p["Name"] for p in json.loads(admin("project", "list", "-f", "json"))}
