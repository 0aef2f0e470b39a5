"""What the metadata service tells one instance: the EC2 and OpenStack trees, as data.

Owns: the versions both trees list, Nova's shapes of ``meta_data.json``,
``network_data.json`` and the EC2 ``meta-data/`` entries (the ones
cloud-init reads: instance-id, local-hostname, public-keys/...), built from
an ``InstanceFacts`` record; looking a path up in a tree (a directory lists
its entries, a directory's name ending in ``/``).

Must never: read anything but the facts it is given (one instance's).
"""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

#: EC2 versions Nova serves (every one with the same tree here), oldest first
EC2_VERSIONS = (
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
)
#: OpenStack versions Nova serves; cloud-init takes the newest it knows (2018-08-27)
OPENSTACK_VERSIONS = (
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
)
#: first OpenStack versions with these files
_SINCE = {"network_data.json": "2015-10-15", "vendor_data2.json": "2016-10-06"}

Tree = dict[str, Any]


@dataclass(frozen=True)
class Port:
    mac: str
    address: str
    cidr: str
    gateway: str
    network_uid: str
    dns_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceFacts:
    uuid: str
    ec2_id: str
    name: str
    hostname: str
    project_id: str
    zone: str
    flavor: str
    launch_index: int = 0
    reservation_id: str = ""
    image_ec2_id: str = ""
    kernel_ec2_id: str = ""
    ramdisk_ec2_id: str = ""
    #: (name, type, public key)
    keys: tuple[tuple[str, str, str], ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    user_data: bytes | None = None
    ports: tuple[Port, ...] = ()
    floating_ips: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    password: str = ""


def meta_data_json(f: InstanceFacts) -> dict[str, Any]:
    """OpenStack's ``meta_data.json`` (Nova's fields)."""
    return {
        "uuid": f.uuid,
        "meta": dict(f.meta),
        "keys": [{"name": n, "type": t, "data": k} for n, t, k in f.keys],
        "public_keys": {n: k for n, _t, k in f.keys},
        "hostname": f.hostname,
        "name": f.name,
        "launch_index": f.launch_index,
        "availability_zone": f.zone,
        "project_id": f.project_id,
        "devices": [],
        "dedicated_cpus": [],
    }


def network_data_json(f: InstanceFacts) -> dict[str, Any]:
    """OpenStack's ``network_data.json``: a link per port, its network (DHCP), DNS."""
    links, networks, services = [], [], []
    for index, p in enumerate(f.ports):
        link = f"tap{index}"
        net = ipaddress.IPv4Network(p.cidr, strict=False)
        links.append({"id": link, "type": "bridge", "ethernet_mac_address": p.mac, "mtu": 1500})
        dns = [{"type": "dns", "address": a} for a in p.dns_servers]
        networks.append(
            {
                "id": f"network{index}",
                "type": "ipv4_dhcp",
                "link": link,
                "ip_address": p.address,
                "netmask": str(net.netmask),
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": p.gateway}],
                "network_id": p.network_uid,
                "services": dns,
            }
        )
        services += [s for s in dns if s not in services]
    return {"links": links, "networks": networks, "services": services}


def _ec2_meta_data(f: InstanceFacts) -> Tree:
    first = f.ports[0].address if f.ports else ""
    tree: Tree = {
        "ami-id": f.image_ec2_id,
        "ami-launch-index": str(f.launch_index),
        "ami-manifest-path": "FIXME",  # Nova's value, word for word
        "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
        "hostname": f.hostname,
        "instance-action": "none",
        "instance-id": f.ec2_id,
        "instance-type": f.flavor,
        "local-hostname": f.hostname,
        "local-ipv4": first,
        "placement": {"availability-zone": f.zone},
        "public-hostname": f.hostname,
        "public-ipv4": f.floating_ips[0] if f.floating_ips else "",
        "reservation-id": f.reservation_id,
        "security-groups": "\n".join(f.security_groups),
    }
    if f.keys:
        tree["public-keys"] = {
            f"{i}={name}": {"openssh-key": key} for i, (name, _t, key) in enumerate(f.keys)
        }
    if f.kernel_ec2_id:
        tree["kernel-id"] = f.kernel_ec2_id
    if f.ramdisk_ec2_id:
        tree["ramdisk-id"] = f.ramdisk_ec2_id
    return tree


def _openstack_version(f: InstanceFacts, version: str) -> Tree:
    files: Tree = {
        "meta_data.json": json.dumps(meta_data_json(f)),
        "password": f.password,
        "vendor_data.json": "{}",
    }
    order = OPENSTACK_VERSIONS.index(version) if version != "latest" else len(OPENSTACK_VERSIONS)
    for name, since in _SINCE.items():
        if order >= OPENSTACK_VERSIONS.index(since):
            files[name] = json.dumps(network_data_json(f)) if name == "network_data.json" else "{}"
    if f.user_data is not None:
        files["user_data"] = f.user_data
    return files


def tree(f: InstanceFacts) -> Tree:
    """Everything the instance may read, from ``/`` down."""
    ec2_version: Tree = {"meta-data": _ec2_meta_data(f)}
    if f.user_data is not None:
        ec2_version["user-data"] = f.user_data
    root: Tree = {v: ec2_version for v in (*EC2_VERSIONS, "latest")}
    root["openstack"] = {v: _openstack_version(f, v) for v in (*OPENSTACK_VERSIONS, "latest")}
    return root


def _listing(node: Tree) -> bytes:
    if node and all("=" in k for k in node):
        # public-keys/ lists "0=name" (public-keys/0/ is that key's directory)
        return "\n".join(node).encode()
    return "\n".join(k + "/" if isinstance(v, dict) else k for k, v in node.items()).encode()


def lookup(root: Tree, path: str) -> bytes | None:
    """The body served at ``path``, or None when nothing is there. The version lists
    (``/`` and ``/openstack``) name versions without a trailing "/", as Nova's."""
    parts = [p for p in path.split("/") if p]
    if parts in ([], ["openstack"]):
        versions = [k for k in (root if not parts else root["openstack"]) if k != "openstack"]
        return "\n".join(versions).encode()
    node: Any = root
    for part in parts:
        if not isinstance(node, dict):
            return None
        if part in node:
            node = node[part]
            continue
        # public-keys/0/ names the entry "0=name" by its index
        by_index = [k for k in node if "=" in k and k.split("=", 1)[0] == part]
        if not by_index:
            return None
        node = node[by_index[0]]
    if isinstance(node, dict):
        return _listing(node)
    return node if isinstance(node, bytes) else str(node).encode()


def decode_user_data(value: str | None) -> bytes | None:
    """An instance's ``spec.userData`` (base64) as the guest gets it."""
    return base64.b64decode(value) if value else None
