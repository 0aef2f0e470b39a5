"""A real guest: apply -> domain running, and apply -> the guest's own boot line on its console.

Starts its own etcd, a libvirtd if none answers, ``desired reconcilers``
and ``desired hostd`` (real guests through ``qemu:///system``, TCG here) as
separate processes, registers the tiny guest's images, then creates
``--count`` instances one after another, each timed from the create to
``domainState: running`` in its status and to ``desired-guest: booted`` in
its console log, and deletes it. The first uses a cold image cache.

    .venv/bin/python -m benchmarks.real_guest_boot --count 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fixtures.etcd import EtcdServer
from fixtures.guest_image import BOOT_MARKER, build
from fixtures.libvirtd import Libvirtd
from state.envelope import Ref
from state.errors import NotFound
from state.etcd import EtcdClient
from state.store import Store

BIN = Path(sys.executable).parent


async def run(url: str, images: Path, count: int) -> None:
    store = Store(EtcdClient(url))
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "m1.tiny"},
            "spec": {"vcpus": 1, "ramMiB": 128, "diskGiB": 1},
        }
    )
    for obj in build(images).image_objects("tiny"):
        await store.create(obj)
    to_running: list[float] = []
    to_boot: list[float] = []
    for i in range(count):
        ref = Ref("Instance", "bench", f"vm{i}")
        start = time.perf_counter()
        await store.create(
            {
                "kind": "Instance",
                "metadata": {"name": ref.name, "project": "bench"},
                "spec": {"flavor": "m1.tiny", "image": "tiny"},
            }
        )
        running = booted = 0.0
        while not booted:
            status = (await store.get(ref)).get("status", {})
            now = time.perf_counter() - start
            if not running and status.get("domainState") == "running":
                running = now
            log = status.get("consoleLog")
            if running and log:
                text = await asyncio.to_thread(Path(log).read_text, errors="replace")
                if BOOT_MARKER in text:
                    booted = now
            if now > 120:
                raise SystemExit(f"vm{i} did not boot in 120 s: {status}")
            await asyncio.sleep(0.01)
        to_running.append(running)
        to_boot.append(booted)
        print(f"vm{i}: running {running:.2f} s, console boot line {booted:.2f} s", flush=True)
        await store.delete(ref)
        while True:
            try:
                await store.get(ref)
            except NotFound:
                break
            await asyncio.sleep(0.05)
    warm = to_running[1:] or to_running
    print(f"apply -> running: first (cold image cache) {to_running[0]:.2f} s", flush=True)
    print(
        f"apply -> running, warm: p50 {statistics.median(warm):.2f} s, max {max(warm):.2f} s",
        flush=True,
    )
    warm_boot = to_boot[1:] or to_boot
    print(
        f"apply -> guest's boot line, warm: p50 {statistics.median(warm_boot):.2f} s, "
        f"max {max(warm_boot):.2f} s",
        flush=True,
    )
    await store.etcd.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=5)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="desired-bench-", dir="/var/tmp"))
    work.chmod(0o755)
    daemon = Libvirtd(work / "libvirtd").start()
    etcd = EtcdServer(work / "etcd").start()
    env = {
        **os.environ,
        "DESIRED_ETCD_URL": etcd.url,
        "DESIRED_SQL_URL": f"sqlite:///{work / 'desired.sqlite'}",
        "DESIRED_HOSTD_NAME": f"bench-{os.getpid()}",
        "DESIRED_HOSTD_STORAGE_DIR": str(work / "hostd"),
        "DESIRED_DATA_DIR": str(work / "data"),
    }
    procs = [
        subprocess.Popen([str(BIN / "desired"), "reconcilers"], env=env, stderr=subprocess.DEVNULL),
        subprocess.Popen([str(BIN / "desired"), "hostd"], env=env, stderr=subprocess.DEVNULL),
    ]
    try:
        time.sleep(2)
        asyncio.run(run(etcd.url, work / "images", args.count))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        etcd.stop()
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
