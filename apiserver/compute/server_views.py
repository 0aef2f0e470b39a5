"""Compute API server views: what one server looks like in show, detail, update, rebuild.

Owns: the fields of Nova's server view at each microversion up to 2.47,
built from an Instance (spec, status, metadata) and what it refers to
(flavor, image, project, host): 2.3's extended attributes for admins, 2.9's
``locked``, 2.16's ``host_status`` for admins, 2.19's ``description``, 2.26's
``tags``, 2.47's embedded flavor; the links of a server and the ``hostId``
digest.

Must never: read etcd or SQL (callers hand in the object and the ids); show
the host to a caller the policy keeps from it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from apiserver.compute.context import allowed
from apiserver.compute.microversions import since
from apiserver.compute.times import nova_time_of
from apiserver.urls import base_url
from state.envelope import (
    LAUNCH_INDEX_ANNOTATION,
    RESERVATION_ANNOTATION,
    USER_ANNOTATION,
    Obj,
    display_name,
)

#: the key pair's name as the user gave it, when it is not its object's name
KEY_NAME_ANNOTATION = "desired/key-name"
#: the guest's root disk as hostd attaches it (virtio)
ROOT_DEVICE = "/dev/vda"


@dataclass(frozen=True)
class Refs:
    """The ids a server view shows for names the Instance holds."""

    flavor_id: str
    image_id: str
    project_id: str
    #: when SQL last saw the server change (its creation when unknown)
    updated: dt.datetime | None = None
    deleted: bool = False
    #: the Flavor's spec and name (2.47 embeds them); None when the flavor is gone
    flavor: dict[str, Any] | None = None
    #: Nova's host status (UP, DOWN, MAINTENANCE, UNKNOWN or ""); None: not shown
    host_status: str | None = None
    #: ids of the image's kernel and ramdisk images ("" when none)
    kernel_id: str = ""
    ramdisk_id: str = ""
    #: floating IPs associated with it: (floating address, index of the port it maps to)
    floating: tuple[tuple[str, int], ...] = ()


def links(request: web.Request, kind: str, ident: str, self_too: bool = True) -> list[dict]:
    base = base_url(request)
    out = [{"href": f"{base}/compute/{kind}/{ident}", "rel": "bookmark"}]
    if self_too:
        out.insert(0, {"href": f"{base}/compute/v2.1/{kind}/{ident}", "rel": "self"})
    return out


def host_id(project_id: str, host: str | None) -> str:
    if not host:
        return ""
    return hashlib.sha224(f"{project_id}{host}".encode()).hexdigest()


def _stamp(value: str) -> str:
    return value[:19] + "Z"


#: the statuses whose view shows ``progress``, as Nova's
_PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")
#: the fields of Nova's basic server view (the answers of update and rebuild), and the
#: ones later microversions add to it
BASIC_LATER = ("locked", "description", "tags")
BASIC = (
    "OS-DCF:diskConfig",
    "accessIPv4",
    "accessIPv6",
    "addresses",
    "created",
    "flavor",
    "hostId",
    "id",
    "image",
    "links",
    "metadata",
    "name",
    "progress",
    "status",
    "tenant_id",
    "updated",
    "user_id",
)


def basic(request: web.Request, inst: Obj, refs: Refs) -> dict[str, Any]:
    """Nova's basic server view: ``view`` without the extensions' fields (addresses
    without their type and MAC)."""
    full = view(request, inst, refs)
    out = {k: full[k] for k in BASIC + BASIC_LATER if k in full}
    out["addresses"] = addresses(inst.get("status", {}), refs.floating, extended=False)
    return out


def addresses(
    status: dict[str, Any], floating: tuple[tuple[str, int], ...] = (), extended: bool = True
) -> dict[str, list[dict[str, Any]]]:
    """Nova's addresses of a server, by network name: its ports' fixed addresses, each
    followed by the floating IPs that map to it."""
    out: dict[str, list[dict[str, Any]]] = {}
    for index, port in enumerate(status.get("ports") or []):
        mapped = [f for f, at in floating if at == index]
        for address, kind in ((port["address"], "fixed"), *((f, "floating") for f in mapped)):
            entry: dict[str, Any] = {"addr": address, "version": 4}
            if extended:
                entry["OS-EXT-IPS:type"] = kind
                entry["OS-EXT-IPS-MAC:mac_addr"] = port["mac"]
            out.setdefault(port["network"], []).append(entry)
    return out


def embedded_flavor(request: web.Request, flavor: dict[str, Any] | None, project_id: str) -> dict:
    """2.47's flavor of a server: its sizes and name, with extra specs when the policy
    allows."""
    if flavor is None:
        return {}
    spec = flavor["spec"]
    out: dict[str, Any] = {
        "vcpus": spec.get("vcpus", 0),
        "ram": spec.get("ramMiB", 0),
        "disk": spec.get("diskGiB", 0),
        "ephemeral": spec.get("ephemeralGiB", 0),
        "swap": spec.get("swapMiB", 0),
        "original_name": flavor["name"],
    }
    if allowed(request, "os_compute_api:servers:show:flavor-extra-specs", project_id):
        out["extra_specs"] = dict(spec.get("extraSpecs") or {})
    return out


def view(request: web.Request, inst: Obj, refs: Refs) -> dict[str, Any]:
    meta, spec, status = inst["metadata"], inst["spec"], inst.get("status", {})
    created = _stamp(meta.get("creationTimestamp", ""))
    nova_status = status.get("novaStatus", "BUILD")
    vm_state = status.get("vmState", "building")
    task_state = status.get("taskState", "scheduling" if not status else None)
    if refs.deleted:
        nova_status, vm_state, task_state = "DELETED", "deleted", None
    server: dict[str, Any] = {
        "id": meta["uid"],
        "name": display_name(inst),
        "status": nova_status,
        "tenant_id": refs.project_id,
        "user_id": (meta.get("annotations") or {}).get(USER_ANNOTATION, ""),
        "metadata": dict(spec.get("metadata") or {}),
        "hostId": host_id(refs.project_id, status.get("host")),
        "image": {"id": refs.image_id, "links": links(request, "images", refs.image_id, False)},
        "flavor": {
            "id": refs.flavor_id,
            "links": links(request, "flavors", refs.flavor_id, False),
        },
        "created": created,
        "updated": refs.updated.strftime("%Y-%m-%dT%H:%M:%SZ") if refs.updated else created,
        "addresses": addresses(status, refs.floating),
        "accessIPv4": spec.get("accessIPv4", ""),
        "accessIPv6": spec.get("accessIPv6", ""),
        "links": links(request, "servers", meta["uid"]),
        "key_name": (meta.get("annotations") or {}).get(KEY_NAME_ANNOTATION) or spec.get("keyName"),
        "config_drive": "",
        "OS-DCF:diskConfig": spec.get("diskConfig", "MANUAL"),
        "OS-EXT-AZ:availability_zone": spec.get("availabilityZone") or "nova",
        "OS-EXT-STS:power_state": 0 if refs.deleted else status.get("powerState", 0),
        "OS-EXT-STS:task_state": task_state,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-SRV-USG:launched_at": nova_time_of(status.get("launchedAt")),
        "OS-SRV-USG:terminated_at": None,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": g} for g in spec.get("securityGroups") or ["default"]],
    }
    if nova_status in _PROGRESS_STATUSES:
        server["progress"] = 0
    if since(request, "2.47"):
        server["flavor"] = embedded_flavor(request, refs.flavor, refs.project_id)
    if allowed(request, "os_compute_api:os-extended-server-attributes", refs.project_id):
        server.update(_extended(request, inst, refs))
    if since(request, "2.3"):
        for volume in server["os-extended-volumes:volumes_attached"]:
            volume.setdefault("delete_on_termination", False)
    if since(request, "2.9"):
        server["locked"] = bool(spec.get("locked"))
    if since(request, "2.16") and refs.host_status is not None:
        server["host_status"] = refs.host_status
    if since(request, "2.19"):
        server["description"] = spec.get("description")
    if since(request, "2.26"):
        server["tags"] = list(spec.get("tags") or [])
    if server["status"] == "ERROR" and status.get("fault"):
        server["fault"] = {
            "code": status["fault"].get("code", 500),
            "message": status["fault"].get("message", ""),
            "created": created,
        }
    return server


def _extended(request: web.Request, inst: Obj, refs: Refs) -> dict[str, Any]:
    """The OS-EXT-SRV-ATTR fields an admin sees (more of them from 2.3)."""
    meta, spec, status = inst["metadata"], inst["spec"], inst.get("status", {})
    annotations = meta.get("annotations") or {}
    out: dict[str, Any] = {
        "OS-EXT-SRV-ATTR:host": status.get("host"),
        "OS-EXT-SRV-ATTR:hypervisor_hostname": status.get("host"),
        "OS-EXT-SRV-ATTR:instance_name": f"desired-{meta['uid']}",
    }
    if since(request, "2.3"):
        out.update(
            {
                "OS-EXT-SRV-ATTR:reservation_id": annotations.get(
                    RESERVATION_ANNOTATION, f"r-{meta['uid'][:8]}"
                ),
                "OS-EXT-SRV-ATTR:launch_index": int(annotations.get(LAUNCH_INDEX_ANNOTATION, 0)),
                "OS-EXT-SRV-ATTR:hostname": spec.get("hostname") or meta["name"],
                "OS-EXT-SRV-ATTR:kernel_id": refs.kernel_id,
                "OS-EXT-SRV-ATTR:ramdisk_id": refs.ramdisk_id,
                "OS-EXT-SRV-ATTR:root_device_name": ROOT_DEVICE,
                "OS-EXT-SRV-ATTR:user_data": spec.get("userData"),
            }
        )
    return out
