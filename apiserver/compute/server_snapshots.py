"""Compute API server actions that image a server's disk: ``createImage`` and
``createBackup``.

Owns: the Image such an action makes (private, without data, named as asked,
with the boot settings of the server's image and Nova's properties, under
the caller's ``metadata`` as Nova merges them:
``image_type`` ``snapshot`` or ``backup``, ``instance_uuid``,
``base_image_ref``, ``user_id``, and a backup's ``backup_type``),
``spec.snapshot`` asking the server's host to upload its disk into it, the
409 while one is under way, and a backup's rotation: once the new backup is
asked for, the server's older backups of the same ``backup_type`` beyond
the newest ``rotation`` (the new one counted, and kept even at ``rotation``
0, where Nova would delete it once uploaded) are deleted with their data.

Must never: rotate away another server's, another type's or a non-backup
image.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from apiserver.compute import servers
from apiserver.compute.context import IMAGE_DATA, caller, store_of
from apiserver.compute.faults import ComputeFault
from apiserver.compute.microversions import since
from apiserver.compute.names import display_name
from apiserver.images import new_image, ref_of
from apiserver.urls import base_url
from state.envelope import Obj, Ref
from state.errors import NotFound


async def _snapshot(
    request: web.Request, inst: Obj, action: str, name: Any, properties: dict[str, str]
) -> tuple[Obj, Obj]:
    """The new Image of the server's disk (``properties`` over Nova's own), asked of the
    server's host, and the server as written; Nova's 409 while another is under way or
    the state allows none."""
    meta, status = inst["metadata"], inst.get("status", {})
    uid = meta["uid"]
    asked = inst["spec"].get("snapshot") or {}
    busy = asked.get("generation", 0) > status.get("snapshotGeneration", 0)
    nova_status = status.get("novaStatus", "BUILD")
    if busy or nova_status not in ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED"):
        state = (
            "task_state image_snapshot" if busy else f"vm_state {status.get('vmState', 'building')}"
        )
        raise ComputeFault(409, f"Cannot '{action}' instance {uid} while it is in {state}")
    store = store_of(request)
    try:  # the server's image, which may be gone by now
        base: Obj | None = await servers.image_by_id(
            request, inst["spec"]["image"], meta["project"]
        )
    except ComputeFault:
        base = None
    base_spec = base["spec"] if base is not None else {}
    flavor = await store.get_or_none(Ref("Flavor", None, inst["spec"]["flavor"]))
    boot = {
        k: base_spec[k] for k in ("kernelImage", "ramdiskImage", "kernelCmdline") if k in base_spec
    }
    image = new_image(
        display_name(name),
        meta["project"],
        {
            "diskFormat": "qcow2",
            "containerFormat": "bare",
            "visibility": "private",
            "minDiskGiB": flavor["spec"]["diskGiB"] if flavor is not None else 0,
            "minRamMiB": base_spec.get("minRamMiB", 0),
            **boot,
            "properties": {  # the caller's over Nova's own, as Nova merges them
                "instance_uuid": uid,
                "base_image_ref": base["metadata"]["uid"] if base is not None else "",
                "user_id": caller(request).user_id,
                **properties,
            },
        },
        "snapshot",
    )
    made = await store.create(image)
    spec = dict(inst["spec"])
    spec["snapshot"] = {
        "generation": asked.get("generation", 0) + 1,
        "image": made["metadata"]["name"],
        **({"backup": True} if action == "createBackup" else {}),
    }
    try:
        written = await servers.write_spec(request, inst, spec)
    except ComputeFault:
        await store.delete(Ref("Image", meta["project"], made["metadata"]["name"]))
        raise
    return made, written


async def create_image(request: web.Request, inst: Obj, arg: Any) -> web.Response:
    """A snapshot; 202 with a ``Location`` of the image, from 2.45 ``{"image_id": ...}``."""
    if not isinstance(arg, dict):
        raise ComputeFault(400, "Invalid input for field/attribute createImage.")
    properties = servers.pairs(arg, "metadata") if "metadata" in arg else {}
    made, written = await _snapshot(
        request, inst, "createImage", arg.get("name"), {"image_type": "snapshot", **properties}
    )
    image_id = made["metadata"]["uid"]
    if since(request, "2.45"):
        answer = web.json_response({"image_id": image_id}, status=202)
    else:
        location = f"{base_url(request)}/image/v2/images/{image_id}"
        answer = web.Response(status=202, headers={"Location": location})
    return servers.with_request_id(answer, inst, written)


def _age(image: Obj) -> tuple[str, int]:
    meta = image["metadata"]
    return meta.get("creationTimestamp", ""), int(meta.get("resourceVersion") or 0)


async def _rotate(
    request: web.Request, inst: Obj, made: Obj, backup_type: str, rotation: int
) -> None:
    """Deletes the server's older backups of ``backup_type``, keeping the newest
    ``rotation`` with the new one (``made``, always kept: its host is uploading it)."""
    store, uid = store_of(request), inst["metadata"]["uid"]
    older = [
        i
        for i in (await store.list("Image", inst["metadata"]["project"])).items
        if (i["spec"].get("properties") or {}).get("instance_uuid") == uid
        and (i["spec"].get("properties") or {}).get("image_type") == "backup"
        and (i["spec"].get("properties") or {}).get("backup_type") == backup_type
        and i["metadata"]["uid"] != made["metadata"]["uid"]
    ]
    older.sort(key=_age)
    data = request.app.get(IMAGE_DATA)
    for old in older[: max(len(older) - max(rotation - 1, 0), 0)]:
        try:
            await store.delete(ref_of(old))
        except NotFound:
            continue  # rotated away by another backup meanwhile
        if data is not None:
            data.remove(old["metadata"]["uid"])


async def create_backup(request: web.Request, inst: Obj, arg: Any) -> web.Response:
    """A backup (a snapshot with ``image_type: backup`` and its ``backup_type``) and the
    rotation of older ones; 202, with the image's ``Location`` (from 2.45 its
    ``{"image_id"}``) when ``rotation`` is above 0, as Nova answers."""
    if not isinstance(arg, dict):
        raise ComputeFault(400, "Invalid input for field/attribute createBackup.")
    properties = servers.pairs(arg, "metadata") if "metadata" in arg else {}
    backup_type, rotation = str(arg["backup_type"]), int(arg["rotation"])
    made, written = await _snapshot(
        request,
        inst,
        "createBackup",
        arg.get("name"),
        {"image_type": "backup", **properties, "backup_type": backup_type},
    )
    await _rotate(request, inst, made, backup_type, rotation)
    image_id = made["metadata"]["uid"]
    if rotation == 0:
        answer = web.Response(status=202)
    elif since(request, "2.45"):
        answer = web.json_response({"image_id": image_id}, status=202)
    else:
        location = f"{base_url(request)}/compute/v2.1/images/{image_id}"
        answer = web.Response(status=202, headers={"Location": location})
    return servers.with_request_id(answer, inst, written)


#: the actions of this module by name
ACTIONS: dict[str, Callable[[web.Request, Obj, Any], Awaitable[web.Response]]] = {
    "createImage": create_image,
    "createBackup": create_backup,
}
