"""Running hostd: one agent for this machine, or N simulated hosts in one process.

Owns: building agents from the config (name, zone, lease) with their
drivers (and, for real guests, their storage under ``hostd.storage_dir``,
readable by root and QEMU as libvirt runs it, and their network driver in
libvirtd's network namespace),
telling whether libvirtd is usable here, and running agents until cancelled.

Must never: start real guests on a simulated host or the reverse.
"""

from __future__ import annotations

import asyncio
import shutil
import socket

from hostd.agent import HostAgent
from hostd.console import serve_console
from hostd.host_traits import this_host
from hostd.image_service import ImageService
from hostd.libvirt_driver import LibvirtDriver, VirtError
from hostd.net.driver import HostNetwork
from hostd.net.netns import Namespace, libvirtd_namespace
from hostd.simulated import simulated_uri
from hostd.storage import Storage
from hostd.virt_type import resolve
from reconcilers.runtime.metrics import Metrics
from state.config import Config
from state.etcd import EtcdClient


def host_name(cfg: Config) -> str:
    return cfg.hostd.name or socket.gethostname()


def _image_service(cfg: Config) -> ImageService | None:
    h = cfg.hostd
    return ImageService(h.api_url, h.user, h.password) if h.api_url else None


def simulated_agents(
    cfg: Config, etcd: EtcdClient, count: int, metrics: Metrics | None = None
) -> list[HostAgent]:
    """``count`` simulated hosts; their snapshots (no data) go to ``hostd.api_url``; their
    controllers count in ``metrics``."""
    h = cfg.hostd
    service = _image_service(cfg)
    agents = []
    for i in range(count):
        name = f"{host_name(cfg)}-sim-{i}"
        uri = simulated_uri(
            cfg.data_dir / "simulated", name, vcpus=h.simulated_vcpus, ram_mib=h.simulated_ram_mib
        )
        driver = LibvirtDriver(uri, "test", disk_gib=h.simulated_disk_gib)
        agents.append(
            HostAgent(
                etcd,
                name,
                driver,
                zone=h.zone,
                lease_ttl=h.lease_ttl,
                resync=h.resync,
                uploads=service,
                metrics=metrics,
            )
        )
    return agents


def host_network(cfg: Config) -> HostNetwork:
    """This machine's network driver, in the guests' namespace (libvirtd's by default)."""
    h = cfg.hostd
    path = libvirtd_namespace() if h.network_namespace == "auto" else h.network_namespace
    return HostNetwork(
        Namespace(path or None),
        h.metadata_proxy_port,
        metadata_url=h.metadata_url,
        secret=cfg.metadata.secret,
    )


def real_agent(cfg: Config, etcd: EtcdClient, metrics: Metrics | None = None) -> HostAgent:
    """The agent of this machine's real guests; raises VirtError when libvirtd is not usable.
    Images without a url come from ``hostd.api_url``'s image service, when set, and
    snapshots go there."""
    h = cfg.hostd
    service = _image_service(cfg)
    root = cfg.hostd_storage_dir()
    root.mkdir(parents=True, exist_ok=True)  # its owner and mode: the agent's, at its start
    disk_gib = shutil.disk_usage(root).total >> 30
    driver = LibvirtDriver(h.libvirt_uri, resolve(h.virt_type), disk_gib=disk_gib)
    return HostAgent(
        etcd,
        host_name(cfg),
        driver,
        zone=h.zone,
        lease_ttl=h.lease_ttl,
        resync=h.resync,
        image_fetch_timeout=h.image_fetch_timeout,
        image_retry_delay=h.image_retry_delay,
        storage=Storage.under(root, service, driver.file_access),
        uploads=service,
        traits=tuple(this_host()),
        network=host_network(cfg),
        metrics=metrics,
    )


def try_real_agent(
    cfg: Config, etcd: EtcdClient, metrics: Metrics | None = None
) -> tuple[HostAgent | None, str]:
    """This machine's agent, or None and why libvirtd cannot be used."""
    try:
        return real_agent(cfg, etcd, metrics), ""
    except VirtError as exc:
        return None, exc.message


async def run_agents(agents: list[HostAgent], etcd: EtcdClient) -> None:
    """Runs the agents until cancelled, then closes their drivers and the etcd client."""
    try:
        consoles = serve_console(etcd, {a.host: a.console_log for a in agents})
        await asyncio.gather(*(a.run() for a in agents), consoles)
    finally:
        for a in agents:
            await a.driver.close()
            if a.network is not None:
                await a.network.close()
        await etcd.close()
