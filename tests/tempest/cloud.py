"""The cloud Tempest certifies: ``desired up --simulate`` with what ``tempest.conf`` names.

Owns: seeding a running ``desired up`` (no demo) with the flavors and images
Tempest's configuration points at, and the accounts it runs as (pre-provisioned:
a project and a member user for each, and admins), through etcd's root as an
operator's ``desiredctl apply`` would; writing ``tempest.conf`` and
``accounts.yaml`` for it.

Must never: point Tempest at anything but this cloud's loopback endpoints.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from apiserver.network.app import EXTENSIONS
from state.passwords import hash_password
from state.store import Store
from tests.e2e.up_process import Up

#: flavors Tempest's compute tests boot (``flavor_ref``, ``flavor_ref_alt``)
FLAVORS = {
    "m1.tiny": {"vcpus": 1, "ramMiB": 128, "diskGiB": 1},
    "m1.small": {"vcpus": 1, "ramMiB": 256, "diskGiB": 2},
}
#: images Tempest boots and rebuilds with (``image_ref``, ``image_ref_alt``)
IMAGES = ("tempest-image", "tempest-image-alt")


@dataclass(frozen=True)
class Account:
    user: str
    password: str
    #: "" for a system-scoped account: its roles are on the whole cloud
    project: str
    roles: tuple[str, ...]


async def _seed(up: Up, accounts: list[Account]) -> dict[str, str]:
    """Flavors, images and accounts; returns each image's id by name."""
    store = Store(up.etcd())
    try:
        for name, spec in FLAVORS.items():
            await store.create_or_get({"kind": "Flavor", "metadata": {"name": name}, "spec": spec})
        for a in accounts:
            if not a.project:
                spec = {
                    "passwordHash": hash_password(a.password),
                    "roles": [{"role": r} for r in a.roles],
                }
                await store.create_or_get(
                    {"kind": "User", "metadata": {"name": a.user}, "spec": spec}
                )
                continue
            await store.create_or_get(
                {"kind": "Project", "metadata": {"name": a.project}, "spec": {}}
            )
            await store.create_or_get(
                {
                    "kind": "User",
                    "metadata": {"name": a.user},
                    "spec": {
                        "passwordHash": hash_password(a.password),
                        "defaultProject": a.project,
                        "roles": [
                            *({"role": r, "project": a.project} for r in a.roles),
                            *({"role": "admin"} for r in a.roles if r == "admin"),
                        ],
                    },
                }
            )
    finally:
        await store.etcd.close()
    return {name: _image(up, accounts, name) for name in IMAGES}


def _image(up: Up, accounts: list[Account], name: str) -> str:
    """A public image with a few bytes of data, made through the image API by an admin."""
    admin = next(a for a in accounts if "admin" in a.roles)
    token = _login(up, admin)
    asked = {"name": name, "visibility": "public", "disk_format": "raw", "container_format": "bare"}
    made = _call(up.url + "/image/v2/images", token, "POST", json.dumps(asked).encode())
    image_id = str(json.loads(made)["id"])
    _call(f"{up.url}/image/v2/images/{image_id}/file", token, "PUT", b"\0" * 4096)
    return image_id


def _call(url: str, token: str, method: str, body: bytes) -> bytes:
    kind = "application/octet-stream" if url.endswith("/file") else "application/json"
    headers = {"Content-Type": kind, **({"X-Auth-Token": token} if token else {})}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return bytes(resp.read())


def _login(up: Up, a: Account) -> str:
    user = {"name": a.user, "domain": {"name": "Default"}, "password": a.password}
    auth = {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": a.project, "domain": {"name": "Default"}}},
        }
    }
    req = urllib.request.Request(
        up.url + "/identity/v3/auth/tokens",
        data=json.dumps(auth).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(resp.headers["X-Subject-Token"])


def accounts(projects: int, admins: int) -> list[Account]:
    """A member and a reader in each of ``projects`` projects, ``admins`` admins, and as
    many system readers (Keystone's reader on the whole cloud, which identity tests ask
    for), in that order: Tempest's primary credentials are a project's member, its reader persona
    another user of the same project, and its alt credentials the first free account
    without admin (a member, while one is free)."""
    members = [
        Account(f"tempest-member-{i}", secrets.token_urlsafe(12), f"tempest-{i}", ("member",))
        for i in range(projects)
    ]
    readers = [
        Account(f"tempest-reader-{i}", secrets.token_urlsafe(12), f"tempest-{i}", ("reader",))
        for i in range(projects)
    ]
    admin = [
        Account(f"tempest-admin-{i}", secrets.token_urlsafe(12), f"tempest-admin-{i}", ("admin",))
        for i in range(admins)
    ]
    # one per admin: each identity test class that asks for one holds it while it runs
    system = [
        Account(f"tempest-system-reader-{i}", secrets.token_urlsafe(12), "", ("reader",))
        for i in range(admins)
    ]
    return [*members, *readers, *admin, *system]


def _account_entry(a: Account) -> dict[str, object]:
    """``a`` as an entry of Tempest's ``accounts.yaml`` (``system: all`` when it has no
    project)."""
    entry: dict[str, object] = {
        "username": a.user,
        "password": a.password,
        "user_domain_name": "Default",
        "roles": list(a.roles),
    }
    if a.project:
        entry.update(project_name=a.project, project_domain_name="Default")
    else:
        entry["system"] = "all"
    return entry


def prepare(up: Up, workspace: Path, *, projects: int = 12, admins: int = 4) -> Path:
    """Seeds the cloud and writes ``tempest.conf`` and ``accounts.yaml`` into the Tempest
    workspace's ``etc``; returns the configuration's path."""
    made = accounts(projects, admins)
    images = asyncio.run(_seed(up, made))
    etc = workspace / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    accounts_file = etc / "accounts.yaml"
    accounts_file.write_text(yaml.safe_dump([_account_entry(a) for a in made]))
    admin = next(a for a in made if "admin" in a.roles)
    conf = etc / "tempest.conf"
    conf.write_text(
        CONF.format(
            identity=f"{up.url}/identity/v3",
            accounts=accounts_file,
            admin=admin,
            image=images[IMAGES[0]],
            image_alt=images[IMAGES[1]],
            log=workspace / "tempest.log",
            extensions=",".join(alias for alias, _ in EXTENSIONS),
        )
    )
    return conf


CONF = """
[DEFAULT]
log_file = {log}
debug = false

[auth]
use_dynamic_credentials = false
test_accounts_file = {accounts}
admin_username = {admin.user}
admin_password = {admin.password}
admin_project_name = {admin.project}
admin_domain_name = Default
default_credentials_domain_name = Default

[identity]
uri_v3 = {identity}
auth_version = v3
region = RegionOne
disable_ssl_certificate_validation = true

[identity-feature-enabled]
api_v2 = false
api_v3 = true

[service_available]
nova = true
glance = true
neutron = true
cinder = false
swift = false
placement = false
heat = false

[compute]
image_ref = {image}
image_ref_alt = {image_alt}
flavor_ref = m1.tiny
flavor_ref_alt = m1.small
min_microversion = 2.1
max_microversion = 2.47
build_timeout = 120
build_interval = 1
fixed_network_name =

[compute-feature-enabled]
console_output = true
resize = true
pause = true
suspend = true
shelve = false
snapshot = true
rescue = false
change_password = false
vnc_console = false
spice_console = false
serial_console = false
rdp_console = false
live_migration = false
cold_migration = false
block_migration_for_live_migration = false
attach_encrypted_volume = false
interface_attach = false
personality = false
config_drive = true
metadata_service = true
swap_volume = false
volume_multiattach = false
hostname_fqdn_sanitization = false

[image]
build_timeout = 60
build_interval = 1
container_formats = bare,ami,aki,ari,ovf
disk_formats = qcow2,raw,ami,aki,ari,vmdk,vdi,iso

[image-feature-enabled]
api_v2 = true
api_v1 = false
# uploads are stored as given: desired does not inspect them for their disk format
image_format_enforcement = false

[network]
build_timeout = 60
build_interval = 1
shared_physical_network = false

[network-feature-enabled]
ipv6 = false
api_extensions = {extensions}

[validation]
run_validation = false

[volume-feature-enabled]
api_v2 = false
api_v3 = false
"""
