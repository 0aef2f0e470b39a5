"""Server-side apply: create or update an object by name from a user's config.

Owns: the three-way merge between the config applied last time (kept in the
``desired/last-applied`` annotation), the config applied now and the live
object, so that fields the user removed are removed, fields the user sets
win, and fields written by others (the Compute API, defaults) are kept; and
the choice of which live objects an ``apply --prune`` deletes.

Must never: validate a spec itself (the caller passes ``validate``) or write
when nothing changed (an unchanged apply costs one read and no write).

Lists are atomic (replaced whole), maps merge key by key, as in
``kubectl apply``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from state.envelope import SERVER_FIELDS, Obj, Ref, is_deleting, ref
from state.errors import Conflict, NotFound
from state.store import Store

LAST_APPLIED = "desired/last-applied"
#: merged metadata maps; other metadata fields are the server's
_MERGED_META = ("labels", "annotations")
_APPLY_RETRIES = 8

CREATED = "created"
CONFIGURED = "configured"
UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ApplyResult:
    object: Obj
    #: created, configured or unchanged
    outcome: str


def applied_config(obj: Obj) -> Obj:
    """What a user's object asks for: the fields apply owns, server fields dropped."""
    meta = obj.get("metadata") or {}
    out_meta: dict[str, Any] = {"name": meta.get("name")}
    if meta.get("project"):
        out_meta["project"] = meta["project"]
    for k in _MERGED_META:
        if meta.get(k):
            # anything but a mapping is kept as it is, for the schema to refuse it
            out_meta[k] = dict(meta[k]) if isinstance(meta[k], dict) else meta[k]
    if LAST_APPLIED in (out_meta.get("annotations") or {}):
        del out_meta["annotations"][LAST_APPLIED]
        if not out_meta["annotations"]:
            del out_meta["annotations"]
    return {
        "apiVersion": obj.get("apiVersion", "desired/v1"),
        "kind": obj["kind"],
        "metadata": out_meta,
        "spec": copy.deepcopy(obj.get("spec") or {}),
    }


def last_applied(live: Obj) -> Obj | None:
    raw = (live.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def merge_maps(live: dict[str, Any], last: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Three-way merge of maps: keys in ``last`` but not ``new`` are removed from ``live``."""
    out = copy.deepcopy(live)
    for k in last:
        if k not in new:
            out.pop(k, None)
    for k, v in new.items():
        old = out.get(k)
        if isinstance(v, dict) and isinstance(old, dict):
            prev = last.get(k)
            out[k] = merge_maps(old, prev if isinstance(prev, dict) else {}, v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def merged(live: Obj, config: Obj) -> Obj:
    """The live object after applying ``config`` (itself from ``applied_config``)."""
    last = last_applied(live) or {"metadata": {}, "spec": {}}
    out = {k: copy.deepcopy(v) for k, v in live.items() if k != "status"}
    out["spec"] = merge_maps(live.get("spec") or {}, last.get("spec") or {}, config["spec"])
    meta = dict(out.get("metadata") or {})
    for k in _MERGED_META:
        value = merge_maps(
            meta.get(k) or {},
            (last.get("metadata") or {}).get(k) or {},
            config["metadata"].get(k) or {},
        )
        if value:
            meta[k] = value
        else:
            meta.pop(k, None)
    annotations = dict(meta.get("annotations") or {})
    annotations[LAST_APPLIED] = json.dumps(config, sort_keys=True, separators=(",", ":"))
    meta["annotations"] = annotations
    out["metadata"] = meta
    return out


def new_object(config: Obj) -> Obj:
    """The object to create from ``config``; shares ``config``'s spec, which no step mutates."""
    meta = dict(config["metadata"])
    meta["annotations"] = dict(meta.get("annotations") or {})
    meta["annotations"][LAST_APPLIED] = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return {**config, "metadata": meta}


def _same(a: Obj, b: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        m = {k: v for k, v in (o.get("metadata") or {}).items() if k not in SERVER_FIELDS}
        return {"metadata": m, "spec": o.get("spec") or {}}

    return strip(a) == strip(b)


Validator = Callable[[Obj], Obj]


async def apply(
    store: Store, obj: Obj, *, validate: Validator, dry_run: bool = False
) -> ApplyResult:
    """Creates or updates ``obj`` by name; retries at once when another writer wins.

    ``validate`` receives the object about to be written and returns it (with
    defaults filled in) or raises ``Invalid``. With ``dry_run`` nothing is
    written and the result shows what would have been.
    """
    config = applied_config(obj)
    r = ref(obj)
    live: Obj | None = None
    for _ in range(_APPLY_RETRIES):
        if live is None:
            fresh = validate(new_object(config))
            if dry_run:
                live = await store.get_or_none(r)
                if live is None:
                    return ApplyResult(store.prepare_new(fresh), CREATED)
            else:
                live, created = await store.create_or_get(fresh)
                if created:
                    return ApplyResult(live, CREATED)
        if is_deleting(live):
            # even an unchanged config must not pass for applied: the object is going away
            raise Conflict(f"{r} is being deleted; apply again once it is gone")
        candidate = validate(merged(live, config))
        if _same(candidate, live):
            return ApplyResult(live, UNCHANGED)
        if dry_run:
            preview = store.prepare_update(live, candidate)
            preview["status"] = live.get("status", {})
            return ApplyResult(preview, CONFIGURED)
        candidate["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        try:
            updated = await store.update(candidate, current=live)
        except (Conflict, NotFound):
            live = None
            continue
        return ApplyResult(updated or candidate, CONFIGURED)
    raise Conflict(f"{r}: kept changing during apply; try again")


def prune_candidates(live: Iterable[Obj], applied: set[Ref]) -> list[Ref]:
    """Objects that an earlier apply made (they carry last-applied) and this one left out."""
    chosen = [
        ref(o)
        for o in live
        if last_applied(o) is not None
        and ref(o) not in applied
        and not o["metadata"].get("deletionTimestamp")
    ]
    return sorted(chosen, key=lambda r: (r.kind, r.project or "", r.name))
