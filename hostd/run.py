"""Running hostd: one agent for this machine, or N simulated hosts in one process.

Owns: building agents from the config (name, zone, lease) with their
drivers, and running them until cancelled.

Must never: start real guests on a simulated host or the reverse.
"""

from __future__ import annotations

import asyncio
import socket

from hostd.agent import HostAgent
from hostd.libvirt_driver import LibvirtDriver
from hostd.simulated import simulated_uri
from state.config import Config
from state.etcd import EtcdClient


def host_name(cfg: Config) -> str:
    return cfg.hostd.name or socket.gethostname()


def simulated_agents(cfg: Config, etcd: EtcdClient, count: int) -> list[HostAgent]:
    h = cfg.hostd
    agents = []
    for i in range(count):
        name = f"{host_name(cfg)}-sim-{i}"
        uri = simulated_uri(
            cfg.data_dir / "simulated", name, vcpus=h.simulated_vcpus, ram_mib=h.simulated_ram_mib
        )
        driver = LibvirtDriver(uri, "test", disk_gib=h.simulated_disk_gib)
        agents.append(
            HostAgent(etcd, name, driver, zone=h.zone, lease_ttl=h.lease_ttl, resync=h.resync)
        )
    return agents


async def run_agents(agents: list[HostAgent], etcd: EtcdClient) -> None:
    """Runs the agents until cancelled, then closes their drivers and the etcd client."""
    try:
        await asyncio.gather(*(a.run() for a in agents))
    finally:
        for a in agents:
            await a.driver.close()
        await etcd.close()
