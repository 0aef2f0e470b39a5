"""What a host needs to wire an instance: the ``network`` part of its assignment.

Inputs: the instance (its ``status.ports`` from the network reconciler, its
``spec.securityGroups``), informers of Networks, SecurityGroups and
FloatingIPs, and the Instance informer (members of groups that rules name as
their remote).

Outputs: ``{"ports": [...], "securityGroups": [...], "ingress": [...],
"egress": [...], "floatingIps": [...]}``: each port with its network's bridge,
CIDR, gateway and DNS servers; the IPv4 rules of the instance's groups (the
project's ``default`` when it names none; a group that does not exist has no
rules) with remote groups expanded to their members' addresses (``egress``
only when some group has egress rules: without, all egress is allowed); the
floating IPs associated with it, with their pool's bridge. Handlers that
requeue the instances whose render a change of these objects may alter.

Must never: render a port on a network that is gone, or a member address of
another project's instance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconcilers.runtime.informer import Informer
from state import ipam
from state.envelope import Obj, Ref, condition, ref
from state.etcd import EtcdClient
from state.watch import DELETED

DEFAULT_GROUP = "default"
#: the network of its project an instance that names none gets a port on
DEFAULT_NETWORK = "default"


def _groups(inst: Obj) -> list[str]:
    return list(inst["spec"].get("securityGroups") or [DEFAULT_GROUP])


def _addresses(inst: Obj) -> tuple[str, ...]:
    return tuple(p["address"] for p in (inst.get("status") or {}).get("ports") or [])


class NetworkCatalog:
    def __init__(self, etcd: EtcdClient, instances: Informer) -> None:
        self.instances = instances
        self.networks = Informer(etcd, "Network")
        self.groups = Informer(etcd, "SecurityGroup")
        self.floating = Informer(etcd, "FloatingIP")

    @property
    def informers(self) -> list[Informer]:
        return [self.networks, self.groups, self.floating]

    def _network(self, uid: str) -> Obj | None:
        return next((n for n in self.networks.list() if n["metadata"]["uid"] == uid), None)

    def _pool(self, project: str, name: str) -> Obj | None:
        own = self.networks.get(Ref("Network", project, name))
        if own is not None:
            return own
        return next(
            (
                n
                for n in self.networks.list()
                if n["metadata"]["name"] == name and n["spec"].get("external")
            ),
            None,
        )

    def _members(self, project: str, group: str) -> list[str]:
        return [
            address
            for o in self.instances.list()
            if o["metadata"]["project"] == project
            and not o["metadata"].get("deletionTimestamp")
            and group in _groups(o)
            for address in _addresses(o)
        ]

    def _rules(
        self, project: str, groups: list[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ingress: list[dict[str, Any]] = []
        egress: list[dict[str, Any]] = []
        for name in groups:
            group = self.groups.get(Ref("SecurityGroup", project, name))
            for rule in (group or {}).get("spec", {}).get("rules", []):
                if rule.get("ethertype", "IPv4") != "IPv4":
                    continue
                if rule.get("remoteCidr"):
                    remotes = [rule["remoteCidr"]]
                elif rule.get("remoteGroup"):
                    remotes = [f"{a}/32" for a in self._members(project, rule["remoteGroup"])]
                else:
                    remotes = ["0.0.0.0/0"]
                into = ingress if rule["direction"] == "ingress" else egress
                for remote in remotes:
                    allow = {
                        "protocol": rule.get("protocol", "any"),
                        **{k: rule[k] for k in ("portRangeMin", "portRangeMax") if k in rule},
                        "remoteCidr": remote,
                    }
                    if allow not in into:
                        into.append(allow)
        return ingress, egress

    def _floating_ips(self, inst: Obj, ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        meta = inst["metadata"]
        found = []
        for fip in self.floating.list():
            spec, address = fip["spec"], (fip.get("status") or {}).get("address")
            if (
                fip["metadata"]["project"] != meta["project"]
                or spec.get("instance") != meta["name"]
            ):
                continue
            pool = self._pool(meta["project"], spec["pool"])
            index = ipam.floating_port(spec, ports)
            if pool is None or index is None or not address:
                continue
            if fip["metadata"].get("deletionTimestamp"):
                continue
            found.append(
                {
                    "address": address,
                    "fixedAddress": ports[index]["address"],
                    "networkUid": pool["metadata"]["uid"],
                    "bridge": ipam.bridge_name(pool),
                    "cidr": pool["spec"]["cidr"],
                    "gateway": str(ipam.gateway(pool["spec"])),
                    **({"vlan": pool["spec"]["vlan"]} if pool["spec"].get("vlan") else {}),
                }
            )
        return sorted(found, key=lambda f: f["address"])

    def ports_pending(self, inst: Obj) -> bool:
        """Whether the instance asks for ports the network reconciler has not given it yet
        (it is placed only once it has them, so that its domain starts with them)."""
        spec, meta = inst["spec"], inst["metadata"]
        if "networks" in spec:
            wanted = len(spec["networks"])
        else:
            default = self.networks.get(Ref("Network", meta["project"], DEFAULT_NETWORK))
            wanted = 1 if default is not None else 0
        ready = (condition(inst, "NetworkReady") or {}).get("status") == "True"
        ports = (inst.get("status") or {}).get("ports") or []
        return wanted > 0 and not (ready and len(ports) == wanted)

    def render(self, inst: Obj) -> dict[str, Any] | None:
        """The ``network`` part of the instance's assignment; None when it has no ports."""
        ports = []
        for index, port in enumerate((inst.get("status") or {}).get("ports") or []):
            net = self._network(port["networkUid"])
            if net is None:
                continue
            spec = net["spec"]
            ports.append(
                {
                    "index": index,
                    "network": port["network"],
                    "networkUid": port["networkUid"],
                    "bridge": ipam.bridge_name(net),
                    "cidr": spec["cidr"],
                    "gateway": str(ipam.gateway(spec)),
                    "dnsServers": list(spec.get("dnsServers", [])),
                    "address": port["address"],
                    "mac": port["mac"],
                    **({"vlan": spec["vlan"]} if spec.get("vlan") else {}),
                }
            )
        if not ports:
            return None
        groups = _groups(inst)
        ingress, egress = self._rules(inst["metadata"]["project"], groups)
        rendered: dict[str, Any] = {"ports": ports, "securityGroups": groups, "ingress": ingress}
        if egress:
            rendered["egress"] = egress
        floating = self._floating_ips(inst, ports)
        if floating:
            rendered["floatingIps"] = floating
        return rendered

    def on_change(self, requeue: Callable[[Ref], None]) -> None:
        """Requeues the instances a change may re-render: those of the project of a
        changed network, group or floating IP, and, when an instance's addresses or
        groups change, those of its project whose rules name a group as remote."""

        def project_changed(_type: str, obj: Obj) -> None:
            shared = obj["kind"] == "Network" and obj["spec"].get("shared")
            self._requeue_project(None if shared else obj["metadata"].get("project"), requeue)

        for informer in self.informers:
            informer.add_handler(project_changed)
        seen: dict[Ref, tuple[tuple[str, ...], tuple[str, ...], bool]] = {}

        def instance_changed(_type: str, obj: Obj) -> None:
            key = ref(obj)
            gone = _type == DELETED or bool(obj["metadata"].get("deletionTimestamp"))
            now = (_addresses(obj), tuple(_groups(obj)), gone)
            if seen.get(key) == now:
                return
            if _type == DELETED:
                seen.pop(key, None)
            else:
                seen[key] = now
            project = obj["metadata"]["project"]
            if any(
                rule.get("remoteGroup")
                for g in self.groups.list()
                if g["metadata"]["project"] == project
                for rule in g["spec"].get("rules", [])
            ):
                self._requeue_project(project, requeue)

        self.instances.add_handler(instance_changed)

    def _requeue_project(self, project: str | None, requeue: Callable[[Ref], None]) -> None:
        for o in self.instances.list():
            if project is None or o["metadata"]["project"] == project:
                requeue(ref(o))
