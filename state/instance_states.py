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
#: Nova's API status for each vm_state (task states refine some below)
_STATUS = {
    "building": "BUILD",
    "active": "ACTIVE",
    "stopped": "SHUTOFF",
    "paused": "PAUSED",
    "suspended": "SUSPENDED",
    "error": "ERROR",
    "deleted": "DELETED",
    "resized": "VERIFY_RESIZE",
}
#: task states that Nova shows as a status of their own
_TASK_STATUS = {
    "rebooting": "REBOOT",
    "rebooting_hard": "HARD_REBOOT",
    "rebuilding": "REBUILD",
    "resize_prep": "RESIZE",
    "resize_reverting": "REVERT_RESIZE",
}


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
            task = "resize_reverting"
        elif built and spec.get("flavor") not in (None, built):
            task = "resize_prep"
        elif status.get("resize") and not settling:
            vm = "resized"
        elif domain != want and not refused:
            task = _TASK_TOWARDS.get(want)
        elif spec.get("reboot", {}).get("generation", 0) > status.get("rebootGeneration", 0):
            task = "rebooting_hard" if spec["reboot"].get("type") == "HARD" else "rebooting"
    nova_status = _TASK_STATUS.get(task or "", _STATUS.get(vm, "UNKNOWN"))
    return {"vmState": vm, "taskState": task, "powerState": power, "novaStatus": nova_status}
