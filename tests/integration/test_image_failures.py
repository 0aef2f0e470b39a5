"""An instance whose image cannot be read ends in ERROR with Nova's fault within
``hostd.image_fetch_timeout``; every try before is an event, spaced by a growing wait; after
it, nothing is tried until the instance changes. hostd with storage on libvirt's test
driver, the real scheduler, a real etcd."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from hostd.agent import HostAgent
from hostd.libvirt_driver import LibvirtDriver
from hostd.simulated import simulated_uri
from hostd.storage import Storage
from reconcilers import wiring
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.manager import Manager
from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually

VM = Ref("Instance", "demo", "vm")


@contextlib.asynccontextmanager
async def host_with_storage(store: Store, tmp_path: Path) -> AsyncIterator[HostAgent]:
    """A host whose instances' images are fetched (into ``tmp_path``), tried for 1.5 s."""
    driver = LibvirtDriver(
        simulated_uri(tmp_path, "h1", vcpus=8, ram_mib=8192), "test", disk_gib=100
    )
    agent = HostAgent(
        store.etcd,
        "h1",
        driver,
        resync=0.3,
        storage=Storage.under(tmp_path / "hostd"),
        image_fetch_timeout=1.5,
        image_retry_delay=0.2,
    )
    informer = Informer(store.etcd, "Instance")
    scheduler, needs = wiring.scheduler(store, informer)
    tasks = [
        asyncio.create_task(agent.run()),
        asyncio.create_task(Manager([informer, *needs], [scheduler]).run()),
    ]
    try:
        yield agent
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await driver.close()


async def test_unreadable_image_ends_in_error_with_nova_fault(store: Store, tmp_path: Path) -> None:
    missing = (tmp_path / "no-such.img").as_uri()
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "small"},
            "spec": {"vcpus": 1, "ramMiB": 256, "diskGiB": 1},
        }
    )
    image = await store.create(
        {
            "kind": "Image",
            "metadata": {"name": "gone"},
            "spec": {"visibility": "public", "url": missing, "diskFormat": "qcow2"},
        }
    )
    image_id = image["metadata"]["uid"]
    async with host_with_storage(store, tmp_path) as agent:
        await store.create(
            {
                "kind": "Instance",
                "metadata": {"name": "vm", "project": "demo"},
                "spec": {"flavor": "small", "image": "gone"},
            }
        )

        async def in_error() -> dict:
            status = (await store.get(VM))["status"]
            assert status.get("novaStatus") == "ERROR", status
            return status

        status = await eventually(in_error, timeout=15)
        assert status["vmState"] == "error"
        assert status["fault"] == {"code": 404, "message": f"Image {image_id} could not be found."}
        events = await store.events_for(VM)
        tries = sorted(
            (e["timestamp"], e["message"]) for e in events if e["reason"] == "ImageFetchFailed"
        )
        # 0, 0.2, 0.6 and 1.4 s after the first failure; then ERROR at 1.5 s
        assert 3 <= len(tries) <= 5, tries
        assert all(f"cannot read {missing}: No such file or directory" in m for _, m in tries)
        assert tries[0][1].startswith("try 1:") and "next try in 0.2 s" in tries[0][1]

        async def final_event() -> bool:
            events = await store.events_for(VM)
            [final] = [e for e in events if e["reason"] == "ImageNotFound"]
            return final["message"].startswith(f"Image {image_id} could not be found.")

        await eventually(final_event)
        # terminal: resyncs (every 0.3 s) try nothing more
        await asyncio.sleep(1.2)
        after = [e for e in await store.events_for(VM) if e["reason"] == "ImageFetchFailed"]
        assert len(after) == len(tries)
        assert agent.controller.metrics.errors.labels("hostd", "Terminal")._value.get() == 1


async def test_unusable_image_is_in_error_at_once(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "tiny.img"
    data.write_bytes(b"not what the checksum says")
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "small"},
            "spec": {"vcpus": 1, "ramMiB": 256, "diskGiB": 1},
        }
    )
    await store.create(
        {
            "kind": "Image",
            "metadata": {"name": "bad"},
            "spec": {"visibility": "public", "url": data.as_uri(), "checksum": "0" * 32},
        }
    )

    async def image_events() -> list[str]:
        """hostd's events about the image (the scheduler's, before the host is up, aside)."""
        return [e["reason"] for e in await store.events_for(VM) if e["reason"].startswith("Image")]

    async with host_with_storage(store, tmp_path) as agent:
        await store.create(
            {
                "kind": "Instance",
                "metadata": {"name": "vm", "project": "demo"},
                "spec": {"flavor": "small", "image": "bad"},
            }
        )

        async def failed() -> bool:
            status = (await store.get(VM))["status"]
            assert status.get("novaStatus") == "ERROR", status
            assert "does not match" in status["fault"]["message"]
            assert await image_events() == ["ImageFailed"]
            return True

        await eventually(failed, timeout=15)
        await asyncio.sleep(1.0)  # resyncs every 0.3 s: nothing is fetched again
        assert await image_events() == ["ImageFailed"]
        assert agent.controller.metrics.errors.labels("hostd", "Terminal")._value.get() == 1
