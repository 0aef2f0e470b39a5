"""Nova's instance actions, read off the changes of an Instance.

Owns: which user actions (os-instance-actions' ``create``, ``stop``,
``start``, ``reboot``, ``pause``, ``unpause``, ``suspend``, ``resume``,
``resize``, ``confirmResize``, ``revertResize``, ``rebuild``, ``createImage``,
``createBackup``, ``delete``) one change of an Instance's spec stands for, the event each
action records, a deterministic request id per action, and when an action
has finished.

Must never: do I/O; these are pure functions of objects.
"""

from __future__ import annotations

import uuid
from typing import Any

_POWER_ACTIONS = {
    ("running", "stopped"): "stop",
    ("stopped", "running"): "start",
    ("running", "paused"): "pause",
    ("paused", "running"): "unpause",
    ("running", "suspended"): "suspend",
    ("suspended", "running"): "resume",
}
_TOWARDS = {"stopped": "stop", "running": "start", "paused": "pause", "suspended": "suspend"}

#: the event each action records, as Nova's compute manager names them (lock and unlock,
#: done by the API alone, record none)
EVENTS = {
    "create": "compute__do_build_and_run_instance",
    "stop": "compute_stop_instance",
    "start": "compute_start_instance",
    "reboot": "compute_reboot_instance",
    "pause": "compute_pause_instance",
    "unpause": "compute_unpause_instance",
    "suspend": "compute_suspend_instance",
    "resume": "compute_resume_instance",
    "resize": "compute_finish_resize",
    "confirmResize": "compute_confirm_resize",
    "revertResize": "compute_finish_revert_resize",
    "rebuild": "compute_rebuild_instance",
    "createImage": "compute_snapshot_instance",
    "createBackup": "compute_backup_instance",
    "delete": "compute_terminate_instance",
}

_NAMESPACE = uuid.UUID("6f1c2a8e-5d4b-4c3e-9a7f-2b8d0e1f3a5c")


def request_id(uid: str, generation: int, action: str) -> str:
    """The same action of the same change always gets the same id (replays are idempotent)."""
    return f"req-{uuid.uuid5(_NAMESPACE, f'{uid}/{generation}/{action}')}"


def _gen(spec: dict[str, Any], field: str) -> int:
    return int((spec.get(field) or {}).get("generation", 0))


def actions_between(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """The actions that turned ``old`` (None: not seen before) into ``new``."""
    meta = new["metadata"]
    if old is None:
        return ["delete"] if meta.get("deletionTimestamp") else ["create"]
    if meta.get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
        return ["delete"]
    before, after = old.get("spec", {}), new.get("spec", {})
    found: list[str] = []
    p0, p1 = before.get("powerState", "running"), after.get("powerState", "running")
    if p0 != p1:
        found.append(_POWER_ACTIONS.get((p0, p1), _TOWARDS[p1]))
    if _gen(after, "reboot") > _gen(before, "reboot"):
        found.append("reboot")
    if _gen(after, "rebuild") > _gen(before, "rebuild"):
        found.append("rebuild")
    if _gen(after, "snapshot") > _gen(before, "snapshot"):
        backup = (after.get("snapshot") or {}).get("backup")
        found.append("createBackup" if backup else "createImage")
    if _gen(after, "resize") > _gen(before, "resize"):
        revert = (after.get("resize") or {}).get("action") == "revert"
        found.append("revertResize" if revert else "confirmResize")
    elif after.get("flavor") != before.get("flavor"):
        found.append("resize")
    if bool(after.get("locked")) != bool(before.get("locked")):
        found.append("lock" if after.get("locked") else "unlock")
    return found


def may_finish(obj: dict[str, Any] | None) -> bool:
    """Whether this state of an instance (None: gone) can finish any action: ``outcome``
    is None for every action otherwise, so its open actions need no look."""
    if obj is None:
        return True
    status = obj.get("status", {})
    if status.get("vmState") == "error" or status.get("domainState") == "removed":
        return True
    if not status.get("observedGeneration"):
        return False  # every action was asked at a generation of 1 or more
    return not (status.get("taskState") or status.get("vmState") == "building")


def outcome(action: str, generation: int, obj: dict[str, Any] | None) -> str | None:
    """ "Success" or "Error" once the action asked at ``generation`` has finished, else None.

    ``obj`` None means the instance is gone (a finished delete)."""
    if obj is None:
        return "Success"
    status = obj.get("status", {})
    if status.get("vmState") == "error":
        return "Error"
    if action == "delete":
        return "Success" if status.get("domainState") == "removed" else None
    if status.get("observedGeneration", 0) < generation:
        return None
    if status.get("taskState") or status.get("vmState") == "building":
        return None
    return "Success"
