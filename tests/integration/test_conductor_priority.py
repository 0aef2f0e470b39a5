"""`desired reconcilers` running the conductor alone takes its CPU priority (real processes)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fixtures.etcd import EtcdServer
from tests.conftest import proc_stat

BIN = Path(sys.executable).parent


def nice_of(pid: int, tid: int | None = None) -> int:
    return int(proc_stat(pid, tid)[16])


def start(etcd: EtcdServer, data: Path, run: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "desired"), "reconcilers"],
        env={
            **os.environ,
            **etcd.env(),
            "DESIRED_DATA_DIR": str(data),
            "DESIRED_RECONCILERS_RUN": run,
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(20)


def synced(db: Path) -> bool:
    try:
        with sqlite3.connect(db) as conn:
            return bool(conn.execute("SELECT revision FROM watch_progress").fetchall())
    except sqlite3.Error:
        return False


def test_a_conductor_alone_runs_all_its_threads_at_its_nice(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    conductor = start(etcd_server, tmp_path, "conductor", DESIRED_RECONCILERS_CONDUCTOR_NICE="-7")
    others = start(etcd_server, tmp_path, "scheduler,gitsync,network")
    try:
        deadline = time.monotonic() + 60
        while not synced(tmp_path / "desired.sqlite"):  # it has run a batch: its threads exist
            assert conductor.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        threads = [int(t) for t in os.listdir(f"/proc/{conductor.pid}/task")]
        assert len(threads) > 1
        assert {nice_of(conductor.pid, t) for t in threads} == {-7}
        assert nice_of(others.pid) == 0
    finally:
        stop(conductor)
        stop(others)


def test_a_nice_value_out_of_range_is_refused(etcd_server: EtcdServer, tmp_path: Path) -> None:
    proc = start(etcd_server, tmp_path, "conductor", DESIRED_RECONCILERS_CONDUCTOR_NICE="-30")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert b"reconcilers.conductor_nice must be from -20 to 19, not -30" in err
