"""Quotas: each project's limits and usage, charged in the same transaction as the change.

Owns: the cloud's default limits (Nova's, under the QuotaClass object
``default`` that admins set), a project's limits (its Quota object
``default`` over the defaults; -1 is unlimited), its usage under
``/desired/v1/usage/<project>`` (instances, cores, ram), and ``charge``: the
compare and put that move usage by a delta, refusing what would pass a limit
(``QuotaExceeded``). A caller joins them to the transaction that resizes or
deletes the instance, so two racing changes cannot both pass: the loser's
compare fails (Conflict) and it tries again with the new usage.
``create_charged`` creates several objects of a project and charges them in
one such transaction (creates that arrive together are committed together).

Must never: write usage outside the transaction of the change it accounts for.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from state import keys
from state.envelope import Obj, Ref
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
    "fixed_ips": -1,
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


async def defaults(store: Store) -> dict[str, int]:
    """Every project's default limits: the built-in ones under the QuotaClass "default"."""
    quota_class = await store.get_or_none(Ref("QuotaClass", None, "default"))
    return {**DEFAULT_LIMITS, **(quota_class or {}).get("spec", {}).get("limits", {})}


async def limits(store: Store, project: str) -> dict[str, int]:
    quota = await store.get_or_none(Ref("Quota", project, "default"))
    own = (quota or {}).get("spec", {}).get("limits", {})
    return {**await defaults(store), **own}


async def usage(store: Store, project: str) -> tuple[dict[str, int], int]:
    """The project's usage and its key's revision (0: nothing charged yet)."""
    kv = await store.etcd.get(keys.usage(project))
    if kv is None:
        return dict.fromkeys(CHARGED, 0), 0
    return {**dict.fromkeys(CHARGED, 0), **json.loads(kv.value)}, kv.mod_revision


def _over(used: dict[str, int], delta: dict[str, int], allowed: dict[str, int]) -> str | None:
    """Nova's message when a positive ``delta`` passes a limit, else None."""
    over = [
        name
        for name, more in delta.items()
        if more > 0 and allowed.get(name, -1) >= 0 and used.get(name, 0) + more > allowed[name]
    ]
    if not over:
        return None
    return (
        f"Quota exceeded for {', '.join(over)}: Requested "
        f"{', '.join(str(delta[o]) for o in over)}, but already used "
        f"{', '.join(str(used.get(o, 0)) for o in over)} of "
        f"{', '.join(str(allowed[o]) for o in over)} {', '.join(over)}"
    )


def _moved(used: dict[str, int], delta: dict[str, int]) -> dict[str, int]:
    return {name: max(0, used.get(name, 0) + delta.get(name, 0)) for name in CHARGED}


def _guard(project: str, revision: int) -> Compare:
    key = keys.usage(project)
    return mod_revision_is(key, revision) if revision else absent(key)


async def charge(
    store: Store, project: str, delta: dict[str, int]
) -> tuple[Compare, Put, dict[str, int]]:
    """The compare and put that move the project's usage by ``delta``, and the new usage;
    raises QuotaExceeded when a positive delta passes a limit. A release (no positive
    delta) reads only the usage: one round trip, so that a delete's window is short."""
    used, revision = await usage(store, project)
    if any(v > 0 for v in delta.values()):
        over = _over(used, delta, await limits(store, project))
        if over:
            raise QuotaExceeded(over)
    new = _moved(used, delta)
    return _guard(project, revision), Put(keys.usage(project), dumps(new)), new


async def create_charged(
    store: Store, project: str, items: Sequence[tuple[Obj, dict[str, int]]]
) -> list[Obj | QuotaExceeded]:
    """Creates objects of one project, each charging its size, in one transaction with
    the usage: those that do not fit (counted in order) get QuotaExceeded instead.
    Raises Conflict when the usage moved meanwhile, AlreadyExists when a name is taken
    (nothing is created then)."""
    used, revision = await usage(store, project)
    allowed = await limits(store, project)
    results: list[Obj | QuotaExceeded] = []
    fitting: list[tuple[int, Obj]] = []
    for obj, size in items:
        over = _over(used, size, allowed)
        if over:
            results.append(QuotaExceeded(over))
            continue
        used = _moved(used, size)
        fitting.append((len(results), obj))
        results.append(obj)
    if fitting:
        put = Put(keys.usage(project), dumps(used))
        made = await store.create_many(
            [obj for _, obj in fitting], extra=[(_guard(project, revision), put)]
        )
        for (i, _), stored in zip(fitting, made, strict=True):
            results[i] = stored
    return results


def charged(obj: dict[str, Any]) -> dict[str, int]:
    """What an Instance's create and resizes charged (nothing for one made elsewhere)."""
    raw = (obj.get("metadata", {}).get("annotations") or {}).get(ANNOTATION)
    return {k: int(v) for k, v in json.loads(raw).items()} if raw else {}
