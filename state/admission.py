"""Checks of a new or changed object against the objects beside it, which no schema can make.

Every writer that takes objects from users runs them (the declarative API,
gitsync, the Compute and Neutron faces), after the kind's schema: a
Network's cidr must not overlap another network's of the same project
(their addresses would be ambiguous to the guests and the metadata proxy),
and a Network whose addresses ports still hold is not deleted.

Owns: those checks and their errors (``Invalid`` naming the field,
``Conflict``).

Must never: write.
"""

from __future__ import annotations

import ipaddress

from state import ipam
from state.envelope import Obj, Ref
from state.errors import Conflict, FieldError, Invalid
from state.store import Store


async def admit(store: Store, obj: Obj) -> None:
    """Raises Invalid when ``obj`` cannot live beside the objects already stored."""
    if obj.get("kind") == "Network":
        await _network(store, obj)


async def _network(store: Store, obj: Obj) -> None:
    cidr = (obj.get("spec") or {}).get("cidr")
    if not isinstance(cidr, str) or not cidr:
        return
    try:
        wanted = ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:
        return  # not a network: the kind's schema says so (the declarative API admits first)
    meta = obj["metadata"]
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
