"""The libvirt virt driver against libvirt's own test driver (a real libvirt, in memory)."""

from __future__ import annotations

import asyncio
import uuid

import libvirt

from hostd.libvirt_driver import LibvirtDriver
from hostd.render import DomainSpec, domain_name, read_metadata, render
from hostd.virt import MISSING, PAUSED, RUNNING, STOPPED, SUSPENDED


def spec(uid: str, generation: int = 1, vcpus: int = 1) -> DomainSpec:
    return DomainSpec(
        uid=uid,
        name="vm",
        project="demo",
        generation=generation,
        vcpus=vcpus,
        ram_mib=64,
        virt_type="test",
        vnc=False,
    )


def test_render_is_deterministic_and_carries_our_metadata() -> None:
    uid = str(uuid.uuid4())
    a = render(spec(uid))
    assert a == render(spec(uid))
    assert read_metadata(a) == {
        "uid": uid,
        "project": "demo",
        "name": "vm",
        "generation": "1",
        "host": "",
    }
    assert f"<name>{domain_name(uid)}</name>" in a
    assert read_metadata("<domain><name>x</name></domain>") is None


async def test_power_transitions_and_events() -> None:
    driver = LibvirtDriver("test:///default", "test")
    uid = str(uuid.uuid4())
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def collect() -> None:
        async for ev in driver.events():
            if ev.uid == uid:
                seen.put_nowait(ev.state)

    async def event_saying(state: str) -> None:
        # an event carries the domain's state when it is delivered, so wait for the one
        # that says where this transition ended
        while await seen.get() != state:
            pass

    task = asyncio.create_task(collect())
    try:
        for power in (RUNNING, PAUSED, RUNNING, SUSPENDED, RUNNING, STOPPED, PAUSED, RUNNING):
            observed = await driver.ensure(spec(uid), power)
            assert observed.state == power
            assert (await driver.observe(uid)).state == power
            await asyncio.wait_for(event_saying(power), timeout=5)
        # a new generation redefines the domain and brings it back to the asked state
        observed = await driver.ensure(spec(uid, generation=2, vcpus=2), RUNNING)
        assert (observed.state, observed.generation) == (RUNNING, 2)
        conn = libvirt.open("test:///default")
        assert conn.lookupByUUIDString(uid).info()[3] == 2
        await driver.remove(uid)
        assert (await driver.observe(uid)).state == MISSING
        assert uid not in {o.uid for o in await driver.list()}
    finally:
        task.cancel()
        await driver.close()


async def test_domains_without_our_metadata_are_not_listed() -> None:
    driver = LibvirtDriver("test:///default", "test")
    try:
        # the test driver starts with a domain named "test" that is not ours
        assert all(o.uid for o in await driver.list())
        assert "test" not in {o.uid for o in await driver.list()}
    finally:
        await driver.close()
