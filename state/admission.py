"""Checks of a new or changed object against the objects beside it, which no schema can make.

Every writer that takes objects from users runs them (the declarative API,
gitsync, the Compute, Neutron and Keystone faces), after the kind's schema:
a Network's cidr must not overlap another network's of the same project
(their addresses would be ambiguous to the guests and the metadata proxy),
a Network whose addresses ports still hold is not deleted, a User holds
only roles that exist (built in, or a Role object), and a Role does not take
a built-in role's name.

Owns: those checks and their errors (``Invalid`` naming the field,
``Conflict``).

Must never: write, or fail on an object its schema refuses (callers may admit
before they validate).
"""

from __future__ import annotations

import ipaddress

from state import ipam, roles
from state.envelope import Obj, Ref
from state.errors import Conflict, FieldError, Invalid
from state.store import Store


async def admit(store: Store, obj: Obj) -> None:
    """Raises Invalid when ``obj`` cannot live beside the objects already stored."""
    if obj.get("kind") == "Network":
        await _network(store, obj)
    elif obj.get("kind") == "User":
        await _user_roles(store, obj)
    elif obj.get("kind") == "Role":
        _role_name(obj)


async def _user_roles(store: Store, obj: Obj) -> None:
    spec = obj.get("spec")
    held = spec.get("roles") if isinstance(spec, dict) else None
    if not isinstance(held, list):
        return
    wanted = {a.get("role") for a in held if isinstance(a, dict)} - set(roles.BUILTIN)
    if not wanted:
        return
    known = {r["metadata"]["name"] for r in (await store.list("Role")).items}
    errors = [
        FieldError(f"spec.roles[{i}].role", f"there is no role {a['role']!r}")
        for i, a in enumerate(held)
        if isinstance(a, dict) and a.get("role") in wanted - known
    ]
    if errors:
        name = (obj.get("metadata") or {}).get("name")
        raise Invalid(f"User {name!r} is invalid", errors)


def _role_name(obj: Obj) -> None:
    name = (obj.get("metadata") or {}).get("name")
    if name in roles.BUILTIN:
        raise Invalid(
            f"Role {name!r} is invalid",
            [FieldError("metadata.name", f"{name!r} is a built-in role")],
        )


async def _network(store: Store, obj: Obj) -> None:
    spec, meta = obj.get("spec"), obj.get("metadata")
    cidr = spec.get("cidr") if isinstance(spec, dict) else None
    if not cidr or not isinstance(meta, dict):
        return
    try:
        wanted = ipaddress.IPv4Network(cidr, strict=False)
    except (ValueError, TypeError):
        return  # not a network: the kind's schema says so
    for net in (await store.list("Network", meta.get("project"))).items:
        other = net["spec"].get("cidr")
        if net["metadata"]["name"] == meta["name"] or not other:
            continue
        if wanted.overlaps(ipaddress.IPv4Network(other, strict=False)):
            raise Invalid(
                f"Network {meta.get('project')}/{meta['name']} is invalid",
                [
                    FieldError(
                        "spec.cidr",
                        f"{cidr} overlaps {other} of network {net['metadata']['name']}",
                    )
                ],
            )


async def admit_delete(store: Store, r: Ref) -> None:
    """Raises Conflict when the object ``r`` names is still in use."""
    if r.kind != "Network":
        return
    net = await store.get_or_none(r)
    if net is None:
        return
    held = await ipam.held(store.etcd, net["metadata"]["uid"])
    if held:
        raise Conflict(
            f"network {r.project}/{r.name} is in use: {len(held)} port(s) hold addresses on it"
            f" ({', '.join(sorted(held)[:5])}{', ...' if len(held) > 5 else ''})"
        )
