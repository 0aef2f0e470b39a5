"""The resource envelope every desired object shares.

Owns: the shape ``{apiVersion, kind, metadata, spec, status}``, object
references, the fields the server owns (uid, generation, resourceVersion,
timestamps) and the pure helpers that read them. Objects are plain JSON
dicts so they cross etcd, HTTP and YAML unchanged.

Must never: do I/O or validate specs (that is ``schemas``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from state.errors import BadRequest

API_VERSION = "desired/v1"

#: metadata fields only the server sets; a client's values are ignored
SERVER_FIELDS = ("uid", "generation", "resourceVersion", "creationTimestamp", "deletionTimestamp")

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Ref:
    """Names one object: kind, project (None for cluster-scoped) and name."""

    kind: str
    project: str | None
    name: str

    def __str__(self) -> str:
        where = f"{self.project}/" if self.project else ""
        return f"{self.kind}/{where}{self.name}"


def ref(obj: Obj) -> Ref:
    """The reference of an object; raises BadRequest if it has no kind or name."""
    kind = obj.get("kind")
    meta = obj.get("metadata")
    if not isinstance(kind, str) or not kind:
        raise BadRequest("object has no kind")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise BadRequest(f"{kind} has no metadata.name")
    project = meta.get("project") or None
    return Ref(kind, project, meta["name"])


def age_seconds(stamp: str | None) -> float:
    """Seconds since a timestamp written by ``now``; 0 for none."""
    if not stamp:
        return 0.0
    then = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - then).total_seconds()


def now() -> str:
    """The current time as RFC 3339 UTC with microseconds, like Kubernetes' MicroTime."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def meta(obj: Obj) -> dict[str, Any]:
    m = obj.setdefault("metadata", {})
    assert isinstance(m, dict)
    return m


def resource_version(obj: Obj) -> int:
    """The object's resourceVersion as an int; 0 if it has none."""
    rv = obj.get("metadata", {}).get("resourceVersion")
    if rv in (None, ""):
        return 0
    try:
        return int(rv)
    except (TypeError, ValueError):
        raise BadRequest(f"metadata.resourceVersion must be a number, got {rv!r}") from None


#: the annotation naming the user (identity id) who created an object through an API
USER_ANNOTATION = "desired/user-id"
#: the reservation (one create request) a server was made by, and its place in it
RESERVATION_ANNOTATION = "desired/reservation"
LAUNCH_INDEX_ANNOTATION = "desired/launch-index"
#: the scheduler's finalizer: an Instance is gone only once its host has let go of it
SCHEDULER_FINALIZER = "desired/scheduler"
#: the floating IP reconciler's: a FloatingIP is gone only once its address is free again
FLOATING_IP_FINALIZER = "desired/floating-ip"
#: finalizers a new object of a kind gets at creation, so that its owner need not add
#: them with a write of its own
DEFAULT_FINALIZERS: dict[str, tuple[str, ...]] = {
    "Instance": (SCHEDULER_FINALIZER,),
    "FloatingIP": (FLOATING_IP_FINALIZER,),
}


def display_name(obj: Obj) -> str:
    """The name users see: ``spec.displayName`` (Instances made by the Compute API), else
    the object's name."""
    return str((obj.get("spec") or {}).get("displayName") or obj["metadata"]["name"])


def finalizers(obj: Obj) -> list[str]:
    return list(obj.get("metadata", {}).get("finalizers") or [])


def is_deleting(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def condition(obj: Obj, type_: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def set_condition(
    status: dict[str, Any], type_: str, state: bool, reason: str, message: str = ""
) -> bool:
    """Sets one condition in ``status``; returns True if anything changed.

    ``lastTransitionTime`` moves only when the condition's truth changes, as in
    Kubernetes, so a steady state writes nothing.
    """
    conds: list[dict[str, Any]] = status.setdefault("conditions", [])
    want = "True" if state else "False"
    for c in conds:
        if c.get("type") == type_:
            if (c.get("status"), c.get("reason"), c.get("message", "")) == (want, reason, message):
                return False
            if c.get("status") != want:
                c["lastTransitionTime"] = now()
            c.update(status=want, reason=reason, message=message)
            return True
    conds.append(
        {
            "type": type_,
            "status": want,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now(),
        }
    )
    return True
