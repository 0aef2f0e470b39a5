"""Compute API server views at 2.1: what one server looks like in show, detail and lists.

Owns: the fields of Nova's 2.1 server view built from an Instance (spec,
status, metadata) and the ids it refers to (flavor, image, project), the
links of a server, and the ``hostId`` digest.

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
from apiserver.urls import base_url
from state.envelope import USER_ANNOTATION, Obj, display_name

#: the key pair's name as the user gave it, when it is not its object's name
KEY_NAME_ANNOTATION = "desired/key-name"


@dataclass(frozen=True)
class Refs:
    """The ids a server view shows for names the Instance holds."""

    flavor_id: str
    image_id: str
    project_id: str
    #: when SQL last saw the server change (its creation when unknown)
    updated: dt.datetime | None = None
    deleted: bool = False


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


#: the fields of Nova's basic server view (the answers of update and rebuild at 2.1)
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
    """Nova's basic server view: ``view`` without the extensions' fields."""
    full = view(request, inst, refs)
    return {k: full[k] for k in BASIC}


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
        "addresses": {},
        "accessIPv4": "",
        "accessIPv6": "",
        "links": links(request, "servers", meta["uid"]),
        "key_name": (meta.get("annotations") or {}).get(KEY_NAME_ANNOTATION) or spec.get("keyName"),
        "progress": 0,
        "config_drive": "",
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": spec.get("availabilityZone") or "nova",
        "OS-EXT-STS:power_state": 0 if refs.deleted else status.get("powerState", 0),
        "OS-EXT-STS:task_state": task_state,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-SRV-USG:launched_at": None,
        "OS-SRV-USG:terminated_at": None,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": g} for g in spec.get("securityGroups") or ["default"]],
    }
    if allowed(request, "os_compute_api:os-extended-server-attributes", refs.project_id):
        server["OS-EXT-SRV-ATTR:host"] = status.get("host")
        server["OS-EXT-SRV-ATTR:hypervisor_hostname"] = status.get("host")
        server["OS-EXT-SRV-ATTR:instance_name"] = f"desired-{meta['uid']}"
    if server["status"] == "ERROR" and status.get("fault"):
        server["fault"] = {
            "code": status["fault"].get("code", 500),
            "message": status["fault"].get("message", ""),
            "created": created,
        }
    return server
