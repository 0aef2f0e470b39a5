"""What the network faces of the API do to Networks, SecurityGroups and FloatingIPs.

Shared by the Neutron subset (``apiserver.network``) and Nova's proxies
(``apiserver.compute.network_proxies``), which only shape requests and
answers. Errors are typed (``state.errors``); each face words them its way.

Owns: the ids the faces show for what has none of its own (a network's one
subnet, a security group rule, an instance's port: name-based UUIDs); finding
objects by id; the project's ``default`` security group (made on first use,
no rules: all ingress denied, all egress allowed, as nova-network's);
refusing to a caller who is not an admin a cidr that overlaps a
special-purpose block (``check_cidr``: 0.0.0.0/0, loopback, link-local,
multicast, ...; an admin may, though no network may lie inside one);
refusing (with ``state.admission``) overlapping CIDRs within a project,
deleting a network that still has ports, a group instances still use, a
duplicate rule, and associating a floating IP that is associated already
(everything else is the kinds' schemas' to refuse: each change is validated
before it is written); allocating a floating IP's address before the object
is made, so the answer can carry it.

Must never: show or change another project's objects for a caller who is not
an admin (callers pass the project they act for).
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from typing import Any

from schemas import address_blocks
from state import ipam
from state.admission import admit, admit_delete
from state.envelope import Obj, Ref
from state.errors import AlreadyExists, BadRequest, Conflict, DesiredError, NotFound
from state.store import Store
from state.validation import validate

DEFAULT_GROUP = "default"
_IDS = uuid.UUID("8f4a7c52-3d1e-4c5b-9a60-1f2e3d4c5b6a")


class SpecialBlock(BadRequest):
    """A caller who is not an admin asked for a network whose cidr overlaps a special-purpose
    block (``schemas.address_blocks``: 0.0.0.0/0, loopback, link-local, multicast, ...)."""


class RuleExists(Conflict):
    """A security group already has the rule asked for (Neutron's 409; Nova's proxy
    answered 400)."""


class GroupNotDeletable(Conflict):
    """A security group that may not go: the default one, or one servers use."""


def short_id() -> str:
    """A few random hex digits that make a generated object name unique."""
    return uuid.uuid4().hex[:8]


def subnet_id(network: Obj) -> str:
    return str(uuid.uuid5(_IDS, f"subnet/{network['metadata']['uid']}"))


def rule_id(group: Obj, rule: dict[str, Any]) -> str:
    canonical = json.dumps({k: v for k, v in rule.items() if k != "id"}, sort_keys=True)
    return str(uuid.uuid5(_IDS, f"rule/{group['metadata']['uid']}/{canonical}"))


def port_id(instance_uid: str, index: int) -> str:
    return str(uuid.uuid5(_IDS, f"port/{instance_uid}/{index}"))


async def by_uid(store: Store, kind: str, uid: str, project: str | None = None) -> Obj:
    """The object of ``kind`` with that uid (in ``project`` when given), else NotFound."""
    for obj in (await store.list(kind, project)).items:
        if obj["metadata"]["uid"] == uid and not obj["metadata"].get("deletionTimestamp"):
            return obj
    raise NotFound(f"{kind} {uid} could not be found")


async def by_subnet_id(store: Store, sid: str, project: str | None = None) -> Obj:
    for net in (await store.list("Network", project)).items:
        if net["spec"].get("cidr") and subnet_id(net) == sid:
            return net
    raise NotFound(f"Subnet {sid} could not be found")


async def ensure_default_group(store: Store, project: str) -> Obj:
    made, _ = await store.create_or_get(
        {
            "kind": "SecurityGroup",
            "metadata": {"name": DEFAULT_GROUP, "project": project},
            "spec": {"description": "Default security group", "rules": []},
        }
    )
    return made


def check_cidr(before: Obj | None, spec: dict[str, Any], *, admin: bool) -> None:
    """Refuses (SpecialBlock) a new or changed cidr that overlaps a special-purpose block,
    for a caller who is not an admin. An admin may make any network the kind's schema
    takes (a /0 too: its pool skips those blocks); every writer runs that schema."""
    cidr = spec.get("cidr")
    if admin or not isinstance(cidr, str) or cidr == ((before or {}).get("spec") or {}).get("cidr"):
        return
    try:
        net = ipaddress.IPv4Network(cidr)
    except ValueError:
        return  # the schema says what is wrong with it
    blocks = address_blocks.overlapped(net)
    if blocks:
        raise SpecialBlock(
            f"cidr {cidr} overlaps {address_blocks.described(blocks)}, which only an admin's "
            "subnet may span (none may lie inside one)"
        )


async def update_spec(store: Store, obj: Obj, spec: dict[str, Any], *, admin: bool) -> Obj:
    """Writes ``obj`` with ``spec``, checked (``check_cidr``, for a Network), by its kind's
    schema and admission first."""
    if obj.get("kind") == "Network":
        check_cidr(obj, spec, admin=admin)
    updated = validate(dict(obj, spec=spec))
    await admit(store, updated)
    return await store.update(updated) or updated


# --- networks ------------------------------------------------------------------------


async def create_network(
    store: Store, project: str, name: str, spec: dict[str, Any], *, admin: bool
) -> Obj:
    check_cidr(None, spec, admin=admin)
    obj = validate(
        {"kind": "Network", "metadata": {"name": name, "project": project}, "spec": spec}
    )
    await admit(store, obj)
    try:
        return await store.create(obj)
    except AlreadyExists:
        raise Conflict(f"a network named {name!r} exists in the project already") from None


async def set_subnet(store: Store, net: Obj, subnet: dict[str, Any], *, admin: bool) -> Obj:
    """Gives a network its (one) subnet: cidr, gateway, DHCP range, DNS servers."""
    if net["spec"].get("cidr"):
        raise Conflict(f"network {net['metadata']['name']} has a subnet already (one per network)")
    check_cidr(net, subnet, admin=admin)
    updated = validate(dict(net, spec={**net["spec"], **subnet}))
    await admit(store, updated)
    return await store.update(updated) or updated


async def ports_on(store: Store, net: Obj) -> int:
    return await ipam.used(store.etcd, net["metadata"]["uid"])


async def delete_network(store: Store, net: Obj) -> None:
    where = Ref("Network", net["metadata"]["project"], net["metadata"]["name"])
    try:
        await admit_delete(store, where)
    except Conflict:
        raise Conflict(
            f"Unable to complete operation on network {net['metadata']['uid']}. There are one "
            "or more ports still in use on the network."
        ) from None
    await store.delete(where)


async def drop_subnet(store: Store, net: Obj) -> None:
    if await ports_on(store, net):
        raise Conflict(
            f"Unable to complete operation on subnet {subnet_id(net)}: one or more ports have "
            "an IP allocation from this subnet."
        )
    spec = {
        k: v
        for k, v in net["spec"].items()
        if k not in ("cidr", "gateway", "dhcpRange", "dnsServers", "subnetName")
    }
    await store.update(dict(net, spec=spec))


# --- security groups -----------------------------------------------------------------


async def create_group(store: Store, project: str, name: str, spec: dict[str, Any]) -> Obj:
    obj = {"kind": "SecurityGroup", "metadata": {"name": name, "project": project}, "spec": spec}
    try:
        return await store.create(validate(obj))
    except AlreadyExists:
        raise Conflict(f"a security group named {name!r} exists in the project already") from None


async def group_names(store: Store, project: str, refs: list[str]) -> list[str]:
    """The object names of the project's groups that ``refs`` name by name or by id (as
    Nova takes them); BadRequest for one that is not there."""
    groups = (await store.list("SecurityGroup", project)).items
    by_ref: dict[str, str] = {DEFAULT_GROUP: DEFAULT_GROUP}
    for g in groups:
        name = g["metadata"]["name"]
        by_ref.update({name: name, g["metadata"]["uid"]: name})
        if g["spec"].get("displayName"):
            by_ref[g["spec"]["displayName"]] = name
    names = []
    for ref_ in refs:
        if ref_ not in by_ref:
            raise BadRequest(f"Unable to find security_group with name or id '{ref_}'")
        if by_ref[ref_] not in names:
            names.append(by_ref[ref_])
    return names


async def instances_using(store: Store, group: Obj) -> list[str]:
    name, project = group["metadata"]["name"], group["metadata"]["project"]
    return [
        i["metadata"]["name"]
        for i in (await store.list("Instance", project)).items
        if name in (i["spec"].get("securityGroups") or [DEFAULT_GROUP])
    ]


async def delete_group(store: Store, group: Obj) -> None:
    if group["metadata"]["name"] == DEFAULT_GROUP:
        raise GroupNotDeletable("Removing default security group not allowed.")
    using = await instances_using(store, group)
    if using:
        raise GroupNotDeletable(
            f"Security Group {group['metadata']['uid']} in use by instance(s) {', '.join(using)}."
        )
    await store.delete(
        Ref("SecurityGroup", group["metadata"]["project"], group["metadata"]["name"])
    )


async def add_rule(
    store: Store, group: Obj, rule: dict[str, Any]
) -> tuple[Obj, dict[str, Any], str]:
    """Adds ``rule`` to the group (checked, and its defaults filled in, by the kind's
    schema): the group, the rule as stored and its id."""
    if rule.get("remoteGroup"):
        await store.get(Ref("SecurityGroup", group["metadata"]["project"], rule["remoteGroup"]))
    rules = list(group["spec"].get("rules", []))
    updated = validate(dict(group, spec={**group["spec"], "rules": [*rules, rule]}))
    stored = updated["spec"]["rules"][-1]
    rid = rule_id(group, stored)
    if any(rule_id(group, r) == rid for r in rules):
        raise RuleExists(f"Security group rule already exists. Rule id is {rid}.")
    return (await store.update(updated) or updated), stored, rid


async def rule_by_id(
    store: Store, rid: str, project: str | None = None
) -> tuple[Obj, dict[str, Any]]:
    for group in (await store.list("SecurityGroup", project)).items:
        for rule in group["spec"].get("rules", []):
            if rule_id(group, rule) == rid:
                return group, rule
    raise NotFound(f"Security group rule {rid} does not exist")


async def delete_rule(store: Store, group: Obj, rid: str) -> None:
    rules = [r for r in group["spec"].get("rules", []) if rule_id(group, r) != rid]
    await store.update(dict(group, spec={**group["spec"], "rules": rules}))


async def set_groups(
    store: Store, inst: Obj, add: str | None = None, remove: str | None = None
) -> None:
    """Adds a group to an instance, or removes one (Nova's add/removeSecurityGroup)."""
    project = inst["metadata"]["project"]
    groups = list(inst["spec"].get("securityGroups") or [DEFAULT_GROUP])
    if add is not None:
        if add != DEFAULT_GROUP:
            await store.get(Ref("SecurityGroup", project, add))
        if add in groups:
            raise BadRequest(f"Security group {add} is already associated with the instance")
        groups.append(add)
    if remove is not None:
        if remove not in groups:
            raise BadRequest(f"Security group {remove} not associated with the instance")
        groups.remove(remove)
    await store.update(dict(inst, spec={**inst["spec"], "securityGroups": groups}))


# --- floating IPs --------------------------------------------------------------------


async def create_floating_ip(
    store: Store, project: str, pool: Obj, address: str | None = None, **spec: Any
) -> Obj:
    """A FloatingIP of the project with its address already held (so the answer has it)."""
    if not pool["spec"].get("external"):
        raise BadRequest(f"network {pool['metadata']['name']} is not external: no floating IPs")
    uid = str(uuid.uuid4())
    port = await ipam.allocate(store.etcd, pool, uid, 0, address)
    obj = {
        "kind": "FloatingIP",
        "metadata": {"name": f"fip-{uid[:8]}", "project": project},
        "spec": {"pool": pool["metadata"]["name"], "address": port.address, **spec},
    }
    try:
        return await store.create(validate(obj), uid=uid)
    except DesiredError:
        await ipam.release(store.etcd, pool["metadata"]["uid"], uid)
        raise


async def target(store: Store, fip: Obj) -> tuple[Obj, int] | None:
    """The instance a floating IP is associated with and the index of the port it maps
    to (``ipam.floating_port``); None when it is associated with none."""
    name = fip["spec"].get("instance")
    inst = (
        await store.get_or_none(Ref("Instance", fip["metadata"]["project"], name)) if name else None
    )
    if inst is None:
        return None
    index = ipam.floating_port(fip["spec"], (inst.get("status") or {}).get("ports") or [])
    return None if index is None else (inst, index)


async def associate(store: Store, fip: Obj, inst: Obj | None, fixed: str | None = None) -> Obj:
    """Associates the floating IP with ``inst`` (None: disassociates it)."""
    spec = {k: v for k, v in fip["spec"].items() if k not in ("instance", "fixedAddress")}
    current = fip["spec"].get("instance")
    if inst is not None:
        name = inst["metadata"]["name"]
        if current and current != name:
            raise Conflict(
                f"Floating IP {fip['spec'].get('address')} is associated with another instance"
            )
        addresses = [p["address"] for p in (inst.get("status") or {}).get("ports") or []]
        if not addresses:
            raise BadRequest(f"instance {name} has no fixed address to map a floating IP to")
        if fixed is not None and fixed not in addresses:
            raise BadRequest(f"{fixed} is not a fixed address of instance {name}")
        spec["instance"] = name
        if fixed:
            spec["fixedAddress"] = fixed
    updated = dict(fip, spec=spec)
    return await store.update(updated) or updated
