"""Nova's instance state vocabulary, derived from desired's spec and status.

Owns: the mapping from what an Instance asks for (``spec.powerState``, a
pending reboot, deletion) and what hostd observed (``status.domainState``)
to Nova's ``vm_state``, ``task_state``, ``power_state`` and its API status
names (ACTIVE, SHUTOFF, BUILD, ...). hostd writes these into the status; the
Compute API shows them.

Must never: do I/O; it is a pure function of the object.
"""

from __future__ import annotations

from typing import Any

# Nova's power_state codes
NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED = 0, 1, 3, 4, 6, 7

_POWER = {
    "running": RUNNING,
    "paused": PAUSED,
    "stopped": SHUTDOWN,
    "suspended": SUSPENDED,
    "crashed": CRASHED,
}
_VM = {"running": "active", "paused": "paused", "stopped": "stopped", "suspended": "suspended"}
#: the task Nova shows while the domain moves towards the asked power state
_TASK_TOWARDS = {
    "running": "powering-on",
    "stopped": "powering-off",
    "paused": "pausing",
    "suspended": "suspending",
}
_REBOOT = {"rebooting": "REBOOT", "reboot_pending": "REBOOT", "reboot_started": "REBOOT"}
_HARD_REBOOT = {
    "rebooting_hard": "HARD_REBOOT",
    "reboot_pending_hard": "HARD_REBOOT",
    "reboot_started_hard": "HARD_REBOOT",
}
_REBUILD = {
    "rebuilding": "REBUILD",
    "rebuild_block_device_mapping": "REBUILD",
    "rebuild_spawning": "REBUILD",
}
_RESIZE = {
    "resize_prep": "RESIZE",
    "resize_migrating": "RESIZE",
    "resize_migrated": "RESIZE",
    "resize_finish": "RESIZE",
}
#: Nova's API status of each vm_state, refined by some task states ("default": any other)
STATE_MAP: dict[str, dict[str, str]] = {
    "active": {
        "default": "ACTIVE",
        **_REBOOT,
        **_HARD_REBOOT,
        "updating_password": "PASSWORD",
        **_REBUILD,
        "migrating": "MIGRATING",
        **_RESIZE,
    },
    "building": {"default": "BUILD"},
    "stopped": {"default": "SHUTOFF", **_RESIZE, **_REBUILD},
    "resized": {"default": "VERIFY_RESIZE", "resize_reverting": "REVERT_RESIZE"},
    "paused": {"default": "PAUSED", "migrating": "MIGRATING"},
    "suspended": {"default": "SUSPENDED"},
    "rescued": {"default": "RESCUE"},
    "error": {"default": "ERROR", **_REBUILD},
    "deleted": {"default": "DELETED"},
    "soft-delete": {"default": "SOFT_DELETED"},
    "shelved": {"default": "SHELVED"},
    "shelved_offloaded": {"default": "SHELVED_OFFLOADED"},
}


def status_of(vm_state: str, task_state: str | None) -> str:
    """Nova's API status name of a vm_state and task_state."""
    tasks = STATE_MAP.get(vm_state, {"default": "UNKNOWN"})
    return tasks.get(task_state or "default", tasks["default"])


def states_of(statuses: list[str]) -> tuple[set[str], set[str]]:
    """The vm_states and task_states whose status is one of ``statuses`` (any case), as
    Nova's list filter reads them; "default" among the task states means any task."""
    wanted = {s.lower() for s in statuses}
    vm_states: set[str] = set()
    task_states: set[str] = set()
    for vm, tasks in STATE_MAP.items():
        for task, name in tasks.items():
            if name.lower() in wanted:
                vm_states.add(vm)
                task_states.add(task)
    return vm_states, task_states


def nova_state(obj: dict[str, Any]) -> dict[str, Any]:
    """``vmState``, ``taskState``, ``powerState`` and ``novaStatus`` of an Instance."""
    spec, status, meta = obj.get("spec", {}), obj.get("status", {}), obj.get("metadata", {})
    domain = status.get("domainState")
    want = spec.get("powerState", "running")
    power = _POWER.get(domain or "", NOSTATE)
    refused = any(
        c.get("type") == "Ready" and c.get("reason") == "InvalidTransition"
        for c in status.get("conditions", []) or []
    )
    failed = any(
        c.get("type") in ("Scheduled", "Ready")
        and c.get("reason") in ("InvalidSpec", "NoValidHost", "Failed")
        and c.get("status") == "False"
        for c in status.get("conditions", []) or []
    )
    task: str | None = None
    if meta.get("deletionTimestamp"):
        vm, task = (
            ("deleted", None)
            if domain == "removed"
            else (_VM.get(domain or "", "building"), "deleting")
        )
    elif failed and domain in (None, "missing"):
        vm = "error"
    elif domain in (None, "missing", "removed"):
        vm, task = "building", "scheduling" if not status.get("host") else "spawning"
    else:
        vm = _VM.get(domain, "error")
        settle = spec.get("resize") or {}
        settling = settle.get("generation", 0) > status.get("resizeGeneration", 0)
        built = status.get("flavor")
        if (spec.get("rebuild") or {}).get("generation", 0) > status.get("rebuildGeneration", 0):
            task = "rebuilding"
        elif settling and settle.get("action") == "revert":
            vm, task = "resized", "resize_reverting"  # as Nova: resized until the revert ends
        elif built and spec.get("flavor") not in (None, built):
            task = "resize_prep"
        elif status.get("resize") and not settling:
            vm = "resized"
        elif domain != want and not refused:
            task = _TASK_TOWARDS.get(want)
        elif spec.get("reboot", {}).get("generation", 0) > status.get("rebootGeneration", 0):
            task = "rebooting_hard" if spec["reboot"].get("type") == "HARD" else "rebooting"
        elif (spec.get("snapshot") or {}).get("generation", 0) > status.get(
            "snapshotGeneration", 0
        ):
            task = "image_snapshot"
    return {
        "vmState": vm,
        "taskState": task,
        "powerState": power,
        "novaStatus": status_of(vm, task),
    }
