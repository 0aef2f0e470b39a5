"""``desired up`` outlives what kills its parts: its conductor or etcd killed with SIGKILL is
started again (said on stderr) while the API keeps serving, and a poison object written
straight into etcd neither stops the running cloud nor a start on the same data."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from state import keys
from state.envelope import Ref, now
from state.sql.projection import Projection
from state.store import Store, dumps
from tests.conftest import proc_stat
from tests.e2e.up_process import BIN, Up, ctl, ctl_env

VM_SPEC = """
kind: Flavor
metadata: {{name: m1.tiny}}
spec: {{vcpus: 1, ramMiB: 128, diskGiB: 1}}
---
kind: Image
metadata: {{name: tiny}}
spec: {{visibility: public}}
---
kind: Instance
metadata: {{name: {name}, project: demo}}
spec: {{flavor: m1.tiny, image: tiny}}
"""


def said(up: Up, pattern: str, timeout: float = 60) -> re.Match[str]:
    """The first line of ``up``'s output that matches ``pattern``, waited for."""
    deadline = time.monotonic() + timeout
    while True:
        for line in list(up.output):
            found = re.search(pattern, line)
            if found:
                return found
        assert up.proc.poll() is None, "desired up exited:\n" + "".join(up.output)
        assert time.monotonic() < deadline, f"no {pattern!r} in:\n" + "".join(up.output)
        time.sleep(0.1)


def serves(up: Up) -> None:
    """The Compute API's version document answers."""
    with urllib.request.urlopen(up.url + "/compute/v2.1/", timeout=10) as resp:
        assert json.load(resp)["version"]["id"] == "v2.1"


def runs_a_server(up: Up, tmp_path: Path, name: str) -> None:
    """A plain server created now becomes ACTIVE, and the conductor projects it into SQL."""
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(VM_SPEC.format(name=name))
    res = ctl(up, "apply", "-f", str(spec))
    assert res.returncode == 0, res.stderr
    res = ctl(
        up, "wait", "instance", name, "-p", "demo", "--for=condition=Ready", "--timeout", "60s"
    )
    assert res.returncode == 0, res.stderr + "".join(up.output[-30:])
    got = ctl(up, "get", "instances", "-p", "demo")
    listed = got.stdout.splitlines()
    assert [line.split()[3] for line in listed[1:] if line.split()[0] == name] == ["ACTIVE"], (
        got.stdout + got.stderr
    )
    view = Projection(f"sqlite:///{up.data_dir / 'desired.sqlite'}")
    try:
        wait_for(lambda: name in {r.name for r in view.rows("Instance", "demo")})
    finally:
        view.close()


def wait_for(probe: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def etcd_pid(up: Up) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(proc_stat(int(entry.name))[1])
                cmdline = (entry / "cmdline").read_text().split("\0")
            except OSError:
                continue
            if parent == up.proc.pid and cmdline[0].endswith("etcd"):
                return int(entry.name)
    raise AssertionError("up has no etcd child")


def test_a_conductor_killed_is_started_again_while_up_serves(up: Up, tmp_path: Path) -> None:
    pid = up.conductor_pid()
    os.kill(pid, signal.SIGKILL)
    said(
        up,
        rf"desired up: the conductor's process \(pid {pid}\) exited with status -9; restarting it in 1 s",
    )
    serves(up)  # while the conductor is away
    again = int(said(up, r"desired up: the conductor's process restarted \(pid (\d+)\)").group(1))
    assert again != pid and int(proc_stat(again)[1]) == up.proc.pid
    runs_a_server(up, tmp_path, "after-conductor")
    assert up.stop() == 0
    assert not Path(f"/proc/{again}").exists()


def test_etcd_killed_is_started_again_on_its_data(up: Up, tmp_path: Path) -> None:
    runs_a_server(up, tmp_path, "before")
    pid = etcd_pid(up)
    os.kill(pid, signal.SIGKILL)
    said(up, rf"desired up: etcd \(pid {pid}\) exited with status -9; restarting it in 1 s")
    said(up, r"desired up: etcd restarted \(pid \d+, https://127\.0\.0\.1:\d+\)")
    res = ctl(up, "get", "instance", "before", "-p", "demo", "-o", "name")
    assert (res.returncode, res.stdout) == (0, "instance/before\n"), res.stderr
    runs_a_server(up, tmp_path, "after-etcd")
    assert up.stop() == 0


async def _poison(up: Up) -> dict:
    """An Instance with a lone surrogate in its name, put into etcd as no API would take it
    (by etcd's root: what a breach or a bug might write)."""
    etcd = up.etcd()
    try:
        obj = {
            "apiVersion": "desired/v1",
            "kind": "Instance",
            "metadata": {
                "name": "fz\ud800x",
                "project": "demo",
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "creationTimestamp": now(),
            },
            "spec": {"flavor": "m1.tiny", "image": "tiny"},
        }
        await etcd.put(keys.spec("Instance", "demo", "poison"), dumps(obj))
        return obj
    finally:
        await etcd.close()


async def _refusals(up: Up) -> int:
    etcd = up.etcd()
    try:
        events = await Store(etcd).events_for(Ref("Instance", "demo", "fz\ud800x"))
        return sum(1 for e in events if e["reason"] == "ProjectionFailed")
    finally:
        await etcd.close()


def test_a_poison_object_stops_neither_up_nor_its_next_start(
    up: Up, data_dir: Path, tmp_path: Path
) -> None:
    asyncio.run(_poison(up))
    wait_for(lambda: asyncio.run(_refusals(up)) >= 1)  # seen in the stream, reported
    runs_a_server(up, tmp_path, "beside-poison")
    assert up.proc.poll() is None
    assert up.stop() == 0
    again = Up(data_dir, "--simulate", "1", "--no-demo")  # the first full list holds it
    try:
        serves(again)
        wait_for(lambda: asyncio.run(_refusals(again)) >= 2)
        runs_a_server(again, tmp_path, "after-restart")
        assert "conductor's process (pid" not in "".join(again.output)  # it never died
    finally:
        assert again.stop() == 0


def test_kills_mid_burst_lose_nothing(up: Up, tmp_path: Path) -> None:
    """The conductor killed while a burst of instances is applied, then etcd while they
    converge: both are started again, every instance becomes ACTIVE and SQL has them all."""
    names = [f"burst-{i}" for i in range(30)]
    spec = tmp_path / "burst.yaml"
    head = VM_SPEC.format(name="unused").partition("---\nkind: Instance")[0]
    spec.write_text(
        head
        + "".join(
            f"---\nkind: Instance\nmetadata: {{name: {n}, project: demo}}\n"
            "spec: {flavor: m1.tiny, image: tiny}\n"
            for n in names
        )
    )
    conductor = up.conductor_pid()
    applying = subprocess.Popen(
        [str(BIN / "desiredctl"), "apply", "-f", str(spec)],
        env=ctl_env(up),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    os.kill(conductor, signal.SIGKILL)
    _, err = applying.communicate(timeout=120)
    assert applying.returncode == 0, err
    etcd = etcd_pid(up)
    os.kill(etcd, signal.SIGKILL)
    said(up, rf"desired up: the conductor's process \(pid {conductor}\) exited with status -9")
    said(up, rf"desired up: etcd \(pid {etcd}\) exited with status -9")
    said(up, r"desired up: etcd restarted")

    def all_active() -> bool:
        got = ctl(up, "get", "instances", "-p", "demo")
        rows = [line.split() for line in got.stdout.splitlines()[1:]]
        return sorted(r[0] for r in rows if r[3] == "ACTIVE") == sorted(names)

    wait_for(all_active, timeout=120)
    view = Projection(f"sqlite:///{up.data_dir / 'desired.sqlite'}")
    try:
        wait_for(lambda: {r.name for r in view.rows("Instance", "demo")} == set(names))
    finally:
        view.close()
    assert up.stop() == 0
