"""hostd's files are root's and QEMU's alone: a tree left world-readable is repaired when hostd
starts, and what hostd makes (images in the cache, an instance's disk and files) is made so.
hostd with storage on libvirt's test driver (which runs no QEMU: root alone), a real etcd and
the real scheduler; ``nobody`` tries to read through ``setpriv``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hostd.agent import HostAgent
from hostd.file_access import ROOT_ONLY, FileAccess
from hostd.libvirt_driver import LibvirtDriver, qemu_access
from hostd.simulated import simulated_uri
from hostd.storage import Storage
from reconcilers import wiring
from reconcilers.runtime.informer import Informer
from reconcilers.runtime.manager import Manager
from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually

VM = Ref("Instance", "demo", "vm")


def access_of(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


def nobody_reads(path: Path) -> bool:
    res = subprocess.run(
        ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "cat", str(path)],
        capture_output=True,
    )
    return res.returncode == 0


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every directory and regular file under ``root`` (itself as "."), with its access."""
    out = {".": access_of(root)}
    for p in root.rglob("*"):
        if not p.is_symlink():
            out[str(p.relative_to(root))] = access_of(p)
    return out


@contextlib.asynccontextmanager
async def host(store: Store, storage: Path, tmp_path: Path) -> AsyncIterator[HostAgent]:
    """A host with real files under ``storage``, on libvirt's test driver, and the scheduler."""
    driver = LibvirtDriver(
        simulated_uri(tmp_path, "h1", vcpus=8, ram_mib=8192), "test", disk_gib=100
    )
    agent = HostAgent(
        store.etcd,
        "h1",
        driver,
        resync=0.3,
        storage=Storage.under(storage, access=driver.file_access),
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


@pytest.fixture
def storage() -> Iterator[Path]:
    """hostd's storage where ``nobody`` could reach it (pytest's tmp is private)."""
    d = Path(tempfile.mkdtemp(prefix="desired-access-", dir="/var/tmp"))
    d.chmod(0o755)
    try:
        yield d / "hostd"
    finally:
        shutil.rmtree(d)


def small_qcow2(path: Path) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    path.chmod(0o644)
    return path


def open_to_all(root: Path) -> None:
    """Every directory under ``root`` 0755 and every file 0644 (links aside)."""
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o755 if p.is_dir() else 0o644)


async def boot(store: Store, tmp_path: Path) -> None:
    """A flavor, an image of a small qcow2 file (0644) and the instance ``demo/vm`` of them."""
    base = await asyncio.to_thread(small_qcow2, tmp_path / "base.qcow2")
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
            "metadata": {"name": "base"},
            "spec": {"visibility": "public", "url": base.as_uri(), "diskFormat": "qcow2"},
        }
    )
    await store.create(
        {
            "kind": "Instance",
            "metadata": {"name": "vm", "project": "demo"},
            "spec": {"flavor": "small", "image": "base"},
        }
    )


async def active(store: Store) -> str:
    async def probe() -> str:
        obj = await store.get(VM)
        assert obj["status"].get("novaStatus") == "ACTIVE", obj["status"]
        return str(obj["metadata"]["uid"])

    return await eventually(probe, timeout=15)


async def test_what_hostd_makes_is_for_root_and_qemu_alone(
    store: Store, storage: Path, tmp_path: Path
) -> None:
    async with host(store, storage, tmp_path):
        await boot(store, tmp_path)
        uid = await active(store)
        files = tree(storage)
    [cached] = [p for p in files if p.startswith("images/")]
    # the test driver runs no QEMU: root's alone, directories 0710 and files 0640
    assert files == {
        ".": (0o710, 0, 0),
        "images": (0o710, 0, 0),
        cached: (0o640, 0, 0),
        "instances": (0o710, 0, 0),
        f"instances/{uid}": (0o710, 0, 0),
        f"instances/{uid}/disk": (0o640, 0, 0),
        f"instances/{uid}/source": (0o640, 0, 0),
    }
    assert not nobody_reads(storage / "instances" / uid / "disk")
    assert not nobody_reads(storage / cached)


async def test_a_world_readable_tree_is_repaired_at_start(
    store: Store, storage: Path, tmp_path: Path
) -> None:
    async with host(store, storage, tmp_path):
        await boot(store, tmp_path)
        uid = await active(store)
    # while hostd is down, its tree is made readable by all (as it was before this check)
    made = tree(storage)
    disk = storage / "instances" / uid / "disk"
    outside = storage.parent / "outside"
    outside.write_bytes(b"not hostd's")
    outside.chmod(0o644)
    (storage / "images" / "link").symlink_to(outside)
    await asyncio.to_thread(open_to_all, storage)
    assert nobody_reads(disk)

    async with host(store, storage, tmp_path):

        async def repaired() -> bool:
            assert not nobody_reads(disk)
            return True

        await eventually(repaired)
        await active(store)
        assert tree(storage) == made
    assert access_of(outside) == (0o644, 0, 0)  # behind a link: not hostd's, untouched


def test_a_running_guests_files_stay_qemus(tmp_path: Path) -> None:
    """libvirt's dynamic ownership gives a running guest's files to QEMU's user: a repair
    keeps them so (QEMU writes the disk through it), and gives anyone else's to root."""
    qemu = FileAccess(uid=4242, gid=4343)
    d = tmp_path / "instances" / "u"
    d.mkdir(parents=True)
    (d / "disk").write_bytes(b"")
    os.chown(d / "disk", 4242, 4242)
    (d / "source").write_bytes(b"")
    os.chown(d / "source", 1000, 1000)
    repaired = qemu.repair(tmp_path)
    assert access_of(d / "disk") == (0o640, 4242, 4343)
    assert access_of(d / "source") == (0o640, 0, 4343)
    assert access_of(d) == (0o710, 0, 4343)
    assert {r.path for r in repaired} == {tmp_path, tmp_path / "instances", d, *d.iterdir()}
    assert qemu.repair(tmp_path) == []


def test_qemus_user_and_group_come_from_libvirts_dac_label() -> None:
    caps = """<capabilities><host>
      <secmodel><model>none</model><doi>0</doi></secmodel>
      <secmodel><model>dac</model><doi>0</doi>
        <baselabel type='kvm'>+64055:+108</baselabel>
        <baselabel type='qemu'>+64055:+64055</baselabel>
      </secmodel></host></capabilities>"""
    assert qemu_access(caps, "qemu") == FileAccess(64055, 64055)
    assert qemu_access(caps, "kvm") == FileAccess(64055, 108)
    assert qemu_access(caps.replace("+64055:+64055", "root:root"), "qemu") == ROOT_ONLY
    assert qemu_access(caps, "test") == ROOT_ONLY
