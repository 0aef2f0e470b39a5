"""One host's network with many instances: how long hostd's network driver takes.

In a network namespace of its own (deleted afterwards), hostd's network
driver converges ``--instances`` assignments, each with one port on one
network and its security groups' rules (``--rules`` ingress rules, half of
them with egress rules too): the first converge (bridge, dnsmasq, every
chain), resyncs with nothing to do, one instance added, and the repair of a
flushed chain. Each is timed for the whole driver and for iptables alone
(python-iptables, one commit per table).

    .venv/bin/python -m benchmarks.host_firewall --instances 500
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from fixtures.netns import NetNamespace, flush_chains
from hostd.net import firewall
from hostd.net.driver import HostNetwork, plan
from hostd.net.iptables import Iptables, owned_chains
from hostd.net.netns import Namespace

NET_UID = str(uuid.uuid4())


def assignment(index: int, rules: int) -> dict[str, Any]:
    uid = str(uuid.uuid4())
    ingress = [
        {"protocol": "tcp", "portRangeMin": 1000 + r, "remoteCidr": f"10.{r}.0.0/16"}
        for r in range(rules)
    ]
    network: dict[str, Any] = {
        "ports": [
            {
                "index": 0,
                "network": "default",
                "networkUid": NET_UID,
                "bridge": "dqbr-bench",
                "cidr": "10.100.0.0/16",
                "gateway": "10.100.0.1",
                "dnsServers": [],
                "address": f"10.100.{index // 250}.{index % 250 + 2}",
                "mac": f"fa:16:3e:00:{index // 256:02x}:{index % 256:02x}",
            }
        ],
        "securityGroups": ["default"],
        "ingress": ingress,
    }
    if index % 2:
        network["egress"] = [{"protocol": "udp", "portRangeMin": 53, "remoteCidr": "0.0.0.0/0"}]
    return {"uid": uid, "name": f"vm{index}", "project": "bench", "network": network}


async def timed(what: str, fn: Any) -> float:
    start = time.perf_counter()
    result = await fn()
    took = time.perf_counter() - start
    extra = f" ({len(result)} repairs)" if isinstance(result, list) and result else ""
    print(f"{what}: {took * 1000:.1f} ms{extra}", flush=True)
    return took


async def run(instances: int, rules: int, resyncs: int) -> None:
    with NetNamespace("bench") as host:
        ns = Namespace(host.path)
        network = HostNetwork(ns, 18999)
        wanted = [assignment(i, rules) for i in range(instances)]
        try:
            await timed(
                f"driver, first converge of {instances} instances",
                lambda: network.sync(lambda: wanted),
            )
            print(f"rules in desired's chains: {sum(ns.call(owned_chains).values())}", flush=True)
            samples = []
            for _ in range(resyncs):
                start = time.perf_counter()
                assert await network.sync(lambda: wanted) == []
                samples.append(time.perf_counter() - start)
            print(
                f"driver, no-change resync: p50 {statistics.median(samples) * 1000:.1f} ms, "
                f"max {max(samples) * 1000:.1f} ms ({resyncs} runs)",
                flush=True,
            )
            wanted.append(assignment(instances, rules))
            await timed("driver, one instance added", lambda: network.sync(lambda: wanted))
            victim = f"dsd-i-{firewall.tap_name(wanted[0]['uid'], 0)}"

            ns.call(flush_chains, victim)
            await timed("driver, a flushed chain repaired", lambda: network.sync(lambda: wanted))

            # iptables alone, from empty tables, as a restarted hostd would find them
            await network.teardown()
            fw = Iptables()  # its own cache of built rules: a cold start
            rendered = firewall.render(plan(wanted, 18999).rules)
            await timed("iptables alone, first apply", lambda: ns.run(fw.converge, rendered))
            samples = []
            for _ in range(resyncs):
                start = time.perf_counter()
                assert await ns.run(fw.converge, rendered) == []
                samples.append(time.perf_counter() - start)
            print(
                f"iptables alone, no-change: p50 {statistics.median(samples) * 1000:.1f} ms, "
                f"max {max(samples) * 1000:.1f} ms",
                flush=True,
            )
            await ns.run(fw.converge, {})
        finally:
            await network.teardown()
            await network.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--instances", type=int, default=500)
    p.add_argument("--rules", type=int, default=4, help="ingress rules of each instance")
    p.add_argument("--resyncs", type=int, default=20)
    args = p.parse_args()
    asyncio.run(run(args.instances, args.rules, args.resyncs))


if __name__ == "__main__":
    main()
