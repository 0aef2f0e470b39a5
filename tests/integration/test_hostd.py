"""hostd on a simulated host (libvirt's test driver) with the scheduler and a real etcd."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from hostd.agent import HostAgent, Uploads
from hostd.console import serve_console
from hostd.libvirt_driver import LibvirtDriver
from hostd.render import DomainSpec, render
from hostd.simulated import simulated_uri
from reconcilers import wiring
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.manager import Manager
from state import keys
from state.envelope import Ref, condition
from state.errors import NotFound
from state.etcd import EtcdClient
from state.store import Store
from tests.conftest import eventually

VM = Ref("Instance", "demo", "vm")


async def flavor_and_image(store: Store) -> None:
    """The flavor ``small`` and the public image ``tiny`` instances here are made of."""
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "small"},
            "spec": {"vcpus": 1, "ramMiB": 256, "diskGiB": 1},
        }
    )
    await store.create(
        {"kind": "Image", "metadata": {"name": "tiny"}, "spec": {"visibility": "public"}}
    )


def sim_agent(
    store: Store, tmp_path: Path, name: str, lease_ttl: int = 5, uploads: Uploads | None = None
) -> HostAgent:
    """The agent of a simulated host with 8 vCPUs, 8 GiB and 100 GiB of disk; its snapshots
    go to ``uploads``."""
    driver = LibvirtDriver(
        simulated_uri(tmp_path, name, vcpus=8, ram_mib=8192), "test", disk_gib=100
    )
    return HostAgent(store.etcd, name, driver, lease_ttl=lease_ttl, resync=0.5, uploads=uploads)


def stray_domain(uid: str, name: str, host: str) -> DomainSpec:
    """A domain of ours defined behind hostd's back."""
    return DomainSpec(
        uid=uid,
        name=name,
        project="demo",
        generation=1,
        vcpus=1,
        ram_mib=64,
        virt_type="test",
        vnc=False,
        host=host,
    )


@contextlib.asynccontextmanager
async def cloud(
    store: Store, tmp_path: Path, uploads: Uploads | None = None
) -> AsyncIterator[HostAgent]:
    await flavor_and_image(store)
    agent = sim_agent(store, tmp_path, "sim-1", uploads=uploads)
    informer = Informer(store.etcd, "Instance")
    scheduler, needs = wiring.scheduler(store, informer)
    tasks = [
        asyncio.create_task(agent.run()),
        asyncio.create_task(Manager([informer, *needs], [scheduler]).run()),
        asyncio.create_task(serve_console(store.etcd, {agent.host: agent.console_log})),
    ]
    try:
        yield agent
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await agent.driver.close()


async def state_is(store: Store, domain_state: str) -> bool:
    obj = await store.get(VM)
    ready = condition(obj, "Ready")
    assert obj["status"].get("domainState") == domain_state, obj["status"]
    assert ready is not None and ready["status"] == "True"
    return True


async def set_spec(store: Store, **changes: object) -> None:
    obj = await store.get(VM)
    obj["spec"].update(changes)
    await store.update(obj)


async def test_instance_lifecycle_on_a_simulated_host(
    store: Store, etcd: EtcdClient, tmp_path: Path
) -> None:
    async with cloud(store, tmp_path) as agent:

        async def registered() -> bool:
            record = await etcd.get(keys.host("sim-1"))
            assert record is not None and b'"vcpus":8' in record.value
            return await etcd.get(keys.alive("sim-1")) is not None

        await eventually(registered)
        await store.create(
            {
                "kind": "Instance",
                "metadata": {"name": "vm", "project": "demo"},
                "spec": {"flavor": "small", "image": "tiny"},
            }
        )
        await eventually(lambda: state_is(store, "running"))
        vm = await store.get(VM)
        uid = vm["metadata"]["uid"]
        assert (await agent.driver.observe(uid)).state == "running"
        nova = {k: vm["status"][k] for k in ("vmState", "taskState", "powerState", "novaStatus")}
        assert nova == {
            "vmState": "active",
            "taskState": None,
            "powerState": 1,
            "novaStatus": "ACTIVE",
        }
        for power in ("stopped", "running", "paused", "running", "suspended", "running"):
            await set_spec(store, powerState=power)
            await eventually(lambda p=power: state_is(store, p))  # type: ignore[misc]
        await set_spec(store, reboot={"generation": 1, "type": "HARD"})

        async def rebooted() -> bool:
            return (await store.get(VM))["status"].get("rebootGeneration") == 1

        await eventually(rebooted)
        await store.delete(VM)

        async def gone() -> bool:
            try:
                await store.get(VM)
            except NotFound:
                return True
            return False

        await eventually(gone)
        assert (await agent.driver.observe(uid)).state == "missing"


async def test_drift_is_repaired_and_strays_are_reaped(
    store: Store, etcd: EtcdClient, tmp_path: Path
) -> None:
    async with cloud(store, tmp_path) as agent:
        await store.create(
            {
                "kind": "Instance",
                "metadata": {"name": "vm", "project": "demo"},
                "spec": {"flavor": "small", "image": "tiny"},
            }
        )
        await eventually(lambda: state_is(store, "running"))
        uid = (await store.get(VM))["metadata"]["uid"]
        # behind hostd's back, through libvirt itself
        conn = agent.driver._conn  # type: ignore[attr-defined]
        conn.lookupByUUIDString(uid).destroy()

        async def repaired() -> bool:
            events = await store.events_for(VM, uid)
            assert any(e["reason"] == "DriftRepaired" for e in events)
            return (await agent.driver.observe(uid)).state == "running"

        await eventually(repaired)
        # a domain of ours that nobody assigned is removed
        stray = str(uuid.uuid4())
        conn.defineXML(render(stray_domain(stray, "stray", "sim-1")))
        # one of another hostd sharing this libvirt is left alone
        foreign = str(uuid.uuid4())
        conn.defineXML(render(stray_domain(foreign, "foreign", "another-host")))
        agent.controller.queue.add(foreign)  # as a libvirt event would

        async def reaped() -> bool:
            return (await agent.driver.observe(stray)).state == "missing"

        await eventually(reaped)
        await asyncio.sleep(1.0)  # two more sweeps
        assert (await agent.driver.observe(foreign)).state == "stopped"


async def test_an_impossible_power_change_is_refused(store: Store, tmp_path: Path) -> None:
    async with cloud(store, tmp_path) as agent:
        await store.create(
            {
                "kind": "Instance",
                "metadata": {"name": "vm", "project": "demo"},
                "spec": {"flavor": "small", "image": "tiny", "powerState": "stopped"},
            }
        )
        await eventually(lambda: state_is(store, "stopped"))
        uid = (await store.get(VM))["metadata"]["uid"]
        await set_spec(store, powerState="paused")

        async def refused() -> bool:
            st = (await store.get(VM))["status"]
            ready = next(c for c in st["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == "InvalidTransition", st
            assert st["fault"] == {
                "code": 409,
                "message": "cannot pause a stopped instance: start it first",
            }
            assert (st["novaStatus"], st["taskState"]) == ("SHUTOFF", None)
            return True

        await eventually(refused)
        assert (await agent.driver.observe(uid)).state == "stopped"  # nothing half-made
        await set_spec(store, powerState="running")
        await eventually(lambda: state_is(store, "running"))
        assert "fault" not in (await store.get(VM))["status"]
