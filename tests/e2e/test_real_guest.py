"""End to end with real guests: ``desired up`` on libvirtd and QEMU (TCG) boots the tiny guest.

A libvirtd is started by the fixture when none answers (and stopped by PID
afterwards). ``desired up`` runs with its own host name and storage
directory, so that it touches only its own domains. Its demo instance
``demo/tiny-1`` boots; the test then drives it with ``desiredctl apply``
through every power state, reboots, a resize with revert and with confirm,
a rebuild, a ``virsh destroy`` behind hostd's back, and delete, and checks
each against libvirt, the disk and the console log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from fixtures.guest_image import BOOT_MARKER
from fixtures.libvirtd import URI, Libvirtd
from fixtures.postgres import PostgresServer
from hostd.libvirt_driver import qemu_access
from hostd.net.driver import HostNetwork
from hostd.net.netns import Namespace, libvirtd_namespace
from state.sql.engine import make_engine
from state.sql.models import InstanceAction, InstanceActionEvent
from state.sql.projection import Projection
from tests.e2e.test_openstack_cli import openstack
from tests.e2e.up_process import Up, ctl

VM = "tiny-1"


@pytest.fixture(scope="module")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    daemon = Libvirtd(tmp_path_factory.mktemp("libvirtd")).start()
    try:
        yield
    finally:
        daemon.stop()


@pytest.fixture
def storage() -> Iterator[Path]:
    """Guests' disks: in a directory QEMU's own user can reach (pytest's tmp is private)."""
    d = Path(tempfile.mkdtemp(prefix="desired-e2e-", dir="/var/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        subprocess.run(["rm", "-rf", str(d)], check=False)


@contextlib.contextmanager
def real_up(data_dir: Path, storage: Path, **env: str) -> Iterator[Up]:
    """``desired up`` with its own host name; afterwards it is stopped and any domain of
    that host still defined (a failed test's) is removed."""
    host = f"e2e-{uuid.uuid4().hex[:8]}"
    up = Up(
        data_dir,
        env={"DESIRED_HOSTD_NAME": host, "DESIRED_HOSTD_STORAGE_DIR": str(storage), **env},
    )
    try:
        assert any("REAL guests" in line for line in up.output), up.output
        yield up
        assert up.stop() == 0, "".join(up.output)
    finally:
        if up.proc.poll() is None:
            up.stop()
        for name in virsh("list", "--all", "--name").split():
            if f"<desired:host>{host}</desired:host>" in virsh("dumpxml", name):
                subprocess.run(["virsh", "-c", URI, "destroy", name], capture_output=True)
                virsh("undefine", name, "--managed-save")
        # what its hostd left of the guests' network (guests keep theirs when hostd stops)
        asyncio.run(_network_teardown())


async def _network_teardown() -> None:
    network = HostNetwork(Namespace(libvirtd_namespace()), 0)
    await network.teardown()
    await network.close()


def virsh(*args: str) -> str:
    return subprocess.run(
        ["virsh", "-c", URI, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def get(up: Up) -> dict[str, Any]:
    res = ctl(up, "get", "instance", VM, "-p", "demo", "-o", "json")
    assert res.returncode == 0, res.stderr
    obj: dict[str, Any] = json.loads(res.stdout)
    return obj


def until(up: Up, check: Callable[[dict[str, Any]], bool], timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        vm = get(up)
        if check(vm):
            return vm
        assert time.monotonic() < deadline, (
            f"generation {vm['metadata'].get('generation')}, status "
            + json.dumps(vm["status"], indent=1)
            + "\nthe cloud's last lines:\n"
            + "".join(up.output[-60:])
        )
        time.sleep(0.3)


def settled(status: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    """The instance's Nova status is ``status``, hostd has seen its latest spec, and
    the status has ``fields``."""

    def check(vm: dict[str, Any]) -> bool:
        st = vm.get("status", {})
        return (
            st.get("novaStatus") == status
            and st.get("observedGeneration") == vm["metadata"]["generation"]
            and all(st.get(k) == v for k, v in fields.items())
        )

    return check


class Guest:
    """The demo instance, changed with ``desiredctl apply`` as a user would."""

    def __init__(self, up: Up, tmp: Path) -> None:
        self.up = up
        self.file = tmp / "vm.yaml"
        self.spec: dict[str, Any] = {"flavor": "m1.tiny", "image": "tiny"}

    def apply(self, **changes: Any) -> None:
        self.spec.update(changes)
        doc = {"kind": "Instance", "metadata": {"name": VM, "project": "demo"}, "spec": self.spec}
        self.file.write_text(yaml.safe_dump(doc))
        res = ctl(self.up, "apply", "-f", str(self.file))
        assert res.returncode == 0, res.stderr


def console(vm: dict[str, Any]) -> str:
    return Path(vm["status"]["consoleLog"]).read_text(errors="replace")


def disk_size(storage: Path, uid: str) -> int:
    info = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(storage / "instances" / uid / "disk")],
        capture_output=True,
        text=True,
        check=True,
    )
    size: int = json.loads(info.stdout)["virtual-size"]
    return size


def actions(up: Up, uid: str, timeout: float = 30.0) -> list[tuple[str, str | None]]:
    """The instance's actions and their events' results, once all have finished."""
    engine = make_engine(f"sqlite:///{up.data_dir / 'desired.sqlite'}")
    query = (
        select(InstanceAction.action, InstanceActionEvent.result)
        .join(InstanceActionEvent, InstanceActionEvent.action_id == InstanceAction.id)
        .where(InstanceAction.instance_uid == uid)
        .order_by(InstanceAction.id)
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as conn:
                rows = [(a, r) for a, r in conn.execute(query)]
            if all(r is not None for _, r in rows) or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)
    finally:
        engine.dispose()


@pytest.mark.usefixtures("libvirtd")
def test_real_guest_lifecycle(tmp_path: Path, storage: Path) -> None:
    with real_up(tmp_path / "desired", storage) as up:
        vm = until(up, settled("ACTIVE", domainState="running"))
        uid = vm["metadata"]["uid"]
        domain = f"desired-{uid}"
        assert virsh("domstate", domain) == "running"
        vm = until(up, lambda v: f"{BOOT_MARKER} {uid}" in console(v), timeout=60)
        assert "vnc" in virsh("dumpxml", domain)
        g = Guest(up, tmp_path)

        for power, status, virsh_state in [
            ("stopped", "SHUTOFF", "shut off"),
            ("running", "ACTIVE", "running"),
            ("paused", "PAUSED", "paused"),
            ("running", "ACTIVE", "running"),
            ("suspended", "SUSPENDED", "shut off"),
            ("running", "ACTIVE", "running"),
        ]:
            g.apply(powerState=power)
            until(up, settled(status, domainState=power))
            assert virsh("domstate", domain) == virsh_state, power
        # started once more after "stopped": wait for that boot before counting reboots
        until(up, lambda v: console(v).count(BOOT_MARKER) == 2, timeout=60)

        g.apply(reboot={"generation": 1, "type": "SOFT"})
        until(up, settled("ACTIVE", rebootGeneration=1))
        # a soft reboot asks the guest: its ACPI handler says so, powers off, QEMU restarts it
        until(up, lambda v: console(v).count(BOOT_MARKER) == 3, timeout=60)
        assert "desired-guest: power button" in console(get(up))
        g.apply(reboot={"generation": 2, "type": "HARD"})
        until(up, settled("ACTIVE", rebootGeneration=2))
        until(up, lambda v: console(v).count(BOOT_MARKER) == 4, timeout=60)
        assert console(get(up)).count("desired-guest: power button") == 1

        # resize to m1.small, revert: the old size and the old disk come back
        assert disk_size(storage, uid) == 1 << 30
        g.apply(flavor="m1.small")
        until(up, settled("VERIFY_RESIZE", flavor="m1.small"))
        assert disk_size(storage, uid) == 2 << 30
        assert "262144 KiB" in virsh("dominfo", domain)
        g.apply(flavor="m1.tiny", resize={"generation": 1, "action": "revert"})
        until(up, settled("ACTIVE", flavor="m1.tiny", resizeGeneration=1))
        assert disk_size(storage, uid) == 1 << 30
        assert "131072 KiB" in virsh("dominfo", domain)
        # resize again and confirm
        g.apply(flavor="m1.small")
        until(up, settled("VERIFY_RESIZE", flavor="m1.small"))
        g.apply(resize={"generation": 2, "action": "confirm"})
        until(up, settled("ACTIVE", flavor="m1.small", resizeGeneration=2))
        assert "262144 KiB" in virsh("dominfo", domain)
        assert not (storage / "instances" / uid / "disk.resize-backup").exists()

        # rebuild: a fresh disk from the image, the guest boots again
        until(up, lambda v: "disk vda 4194304" in console(v).rsplit(BOOT_MARKER, 1)[1], timeout=60)
        boots = console(get(up)).count(BOOT_MARKER)
        g.apply(rebuild={"generation": 1})
        until(up, settled("ACTIVE", rebuildGeneration=1))
        until(up, lambda v: console(v).count(BOOT_MARKER) > boots, timeout=60)
        assert "disk vda 4194304 sectors" in console(get(up)).rsplit(BOOT_MARKER, 1)[1]

        # drift: destroyed behind hostd's back, it is started again and the event says so
        virsh("destroy", domain)
        until(up, lambda v: virsh("domstate", domain) == "running", timeout=60)
        res = ctl(up, "describe", "instance", VM, "-p", "demo")
        assert "DriftRepaired" in res.stdout, res.stdout

        res = ctl(up, "delete", "instance", VM, "-p", "demo", "--wait", "--timeout", "60s")
        assert res.returncode == 0, res.stderr
        assert domain not in virsh("list", "--all", "--name").split()
        assert not (storage / "instances" / uid).exists()

        # the conductor's action log in SQLite: every change above, each finished
        expected = [
            *("create", "stop", "start", "pause", "unpause", "suspend", "resume"),
            *("reboot", "reboot", "resize", "revertResize", "resize", "confirmResize"),
            *("rebuild", "delete"),
        ]
        assert actions(up, uid) == [(a, "Success") for a in expected]


def nobody_reads(path: Path) -> bool:
    return _reads(path, "nobody", "nogroup")


def _reads(path: Path, user: str, group: str) -> bool:
    res = subprocess.run(
        ["setpriv", "--reuid", user, "--regid", group, "--clear-groups", "cat", str(path)],
        capture_output=True,
    )
    return res.returncode == 0


@pytest.mark.usefixtures("libvirtd")
def test_real_guest_files_are_root_and_qemus_alone(tmp_path: Path, storage: Path) -> None:
    """The guest boots from files nobody else can read; a tree left readable by all (as
    hostd made it before) is repaired when hostd starts."""
    qemu = qemu_access(virsh("capabilities"), "qemu")
    stray = storage / "images" / "left-from-before"
    stray.parent.mkdir(mode=0o755)
    stray.write_bytes(b"an image cached when the cache was open to all")
    stray.chmod(0o644)
    assert nobody_reads(stray)
    with real_up(tmp_path / "desired", storage) as up:
        vm = until(up, settled("ACTIVE", domainState="running"))
        uid = vm["metadata"]["uid"]
        until(up, lambda v: f"{BOOT_MARKER} {uid}" in console(v), timeout=60)
        disk = storage / "instances" / uid / "disk"
        files = [p for p in storage.rglob("*") if p.is_file()]
        assert disk in files and stray in files
        for p in [storage, *storage.rglob("*")]:
            st = os.stat(p)
            want = (
                (0o710, 0, qemu.gid)
                if p.is_dir()
                else (0o600, 0, 0)  # virtlogd's
                if p.name == "console.log"
                else (0o640, st.st_uid if st.st_uid == qemu.uid else 0, qemu.gid)
            )
            assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == want, p
            assert not nobody_reads(p) or p.is_dir(), p
        # the running guest's disk is QEMU's (libvirt's dynamic ownership), for its writes
        assert os.stat(disk).st_uid == qemu.uid
        assert not nobody_reads(disk)
        assert _reads(stray, str(qemu.uid), str(qemu.gid))


@pytest.mark.usefixtures("libvirtd")
def test_real_guest_rows_in_postgresql(
    tmp_path: Path, storage: Path, postgres: PostgresServer
) -> None:
    name = f"e2e{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    url = postgres.url.rsplit("/", 1)[0] + "/" + name
    with real_up(tmp_path / "desired", storage, DESIRED_SQL_URL=url) as up:
        vm = until(up, settled("ACTIVE", domainState="running"))
        view = Projection(url)
        try:
            deadline = time.monotonic() + 30
            while True:
                rows = {r.name: r for r in view.rows("Instance", "demo")}
                row = rows.get(VM)
                if row is not None and row.status.get("novaStatus") == "ACTIVE":
                    break
                assert time.monotonic() < deadline, rows
                time.sleep(0.2)
            assert row.uid == vm["metadata"]["uid"]
            assert row.status["host"] == vm["status"]["host"]
            res = ctl(up, "delete", "instance", VM, "-p", "demo", "--wait", "--timeout", "60s")
            assert res.returncode == 0, res.stderr
            deadline = time.monotonic() + 30
            while VM in {r.name for r in view.rows("Instance", "demo")}:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            view.close()


@pytest.mark.usefixtures("libvirtd")
def test_openstack_cli_boots_a_real_guest(tmp_path: Path, storage: Path) -> None:
    with real_up(tmp_path / "desired", storage) as up:
        res = openstack(
            up,
            *("server", "create", "--flavor", "m1.tiny", "--image", "tiny", "--wait"),
            *("-f", "json", "vm1"),
        )
        assert res.returncode == 0, res.stderr
        server = json.loads(res.stdout)
        assert server["status"] == "ACTIVE"
        domain = f"desired-{server['id']}"
        assert virsh("domstate", domain) == "running"
        log = storage / "instances" / server["id"] / "console.log"
        deadline = time.monotonic() + 60
        while f"{BOOT_MARKER} {server['id']}" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
        # the same through the Compute API (asked of hostd through etcd)
        res = openstack(up, "console", "log", "show", "--lines", "50", "vm1")
        assert res.returncode == 0, res.stderr
        assert f"{BOOT_MARKER} {server['id']}" in res.stdout
        # a snapshot of its disk, uploaded by hostd to the image service, boots a second guest
        res = openstack(up, "server", "image", "create", "--wait", "--name", "snap1", "vm1")
        assert res.returncode == 0, res.stderr
        res = openstack(up, "image", "show", "-f", "json", "snap1")
        assert res.returncode == 0, res.stderr
        snap = json.loads(res.stdout)
        assert snap["status"] == "active" and snap["size"] > 0
        res = openstack(
            up,
            *("server", "create", "--flavor", "m1.tiny", "--image", "snap1", "--wait"),
            *("-f", "json", "vm2"),
        )
        assert res.returncode == 0, res.stderr
        second = json.loads(res.stdout)
        log = storage / "instances" / second["id"] / "console.log"
        deadline = time.monotonic() + 60
        while f"{BOOT_MARKER} {second['id']}" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
        res = openstack(up, "server", "delete", "--wait", "vm1", "vm2")
        assert res.returncode == 0, res.stderr
        assert domain not in virsh("list", "--all", "--name").split()
        res = openstack(up, "image", "delete", "snap1")
        assert res.returncode == 0, res.stderr
