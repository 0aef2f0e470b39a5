"""Quotas: each project's limits and usage, charged in the same transaction as the change.

Owns: the cloud's default limits (Nova's), a project's limits (its Quota
object ``default`` over the defaults; -1 is unlimited), its usage under
``/desired/v1/usage/<project>`` (instances, cores, ram), and ``charge``: the
compare and put that move usage by a delta, refusing what would pass a limit
(``QuotaExceeded``). A caller joins them to the transaction that creates,
resizes or deletes the instance, so two racing creates cannot both pass:
the loser's compare fails (Conflict) and it tries again with the new usage.

Must never: write usage outside the transaction of the change it accounts for.
"""

from __future__ import annotations

import json
from typing import Any

from state import keys
from state.envelope import Ref
from state.errors import Forbidden
from state.etcd import Compare, Put, absent, mod_revision_is
from state.store import Store, dumps

DEFAULT_LIMITS = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "key_pairs": 100,
    "metadata_items": 128,
    "server_groups": 10,
    "server_group_members": 10,
    "floating_ips": 10,
    "security_groups": 10,
    "security_group_rules": 20,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
}
#: what ``charge`` counts
CHARGED = ("instances", "cores", "ram")
#: annotation of an Instance: what its create (and resizes) charged, released on delete
ANNOTATION = "desired/charged"


class QuotaExceeded(Forbidden):
    """Nova's 403 for a request over quota."""


async def limits(store: Store, project: str) -> dict[str, int]:
    quota = await store.get_or_none(Ref("Quota", project, "default"))
    own = (quota or {}).get("spec", {}).get("limits", {})
    return {**DEFAULT_LIMITS, **own}


async def usage(store: Store, project: str) -> tuple[dict[str, int], int]:
    """The project's usage and its key's revision (0: nothing charged yet)."""
    kv = await store.etcd.get(keys.usage(project))
    if kv is None:
        return dict.fromkeys(CHARGED, 0), 0
    return {**dict.fromkeys(CHARGED, 0), **json.loads(kv.value)}, kv.mod_revision


async def charge(
    store: Store, project: str, delta: dict[str, int]
) -> tuple[Compare, Put, dict[str, int]]:
    """The compare and put that move the project's usage by ``delta``, and the new usage;
    raises QuotaExceeded when a positive delta passes a limit."""
    used, revision = await usage(store, project)
    allowed = await limits(store, project)
    over = [
        name
        for name, more in delta.items()
        if more > 0 and allowed.get(name, -1) >= 0 and used.get(name, 0) + more > allowed[name]
    ]
    if over:
        raise QuotaExceeded(
            f"Quota exceeded for {', '.join(over)}: Requested "
            f"{', '.join(str(delta[o]) for o in over)}, but already used "
            f"{', '.join(str(used.get(o, 0)) for o in over)} of "
            f"{', '.join(str(allowed[o]) for o in over)} {', '.join(over)}"
        )
    new = {name: max(0, used.get(name, 0) + delta.get(name, 0)) for name in CHARGED}
    key = keys.usage(project)
    guard = mod_revision_is(key, revision) if revision else absent(key)
    return guard, Put(key, dumps(new)), new


def charged(obj: dict[str, Any]) -> dict[str, int]:
    """What an Instance's create and resizes charged (nothing for one made elsewhere)."""
    raw = (obj.get("metadata", {}).get("annotations") or {}).get(ANNOTATION)
    return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}
