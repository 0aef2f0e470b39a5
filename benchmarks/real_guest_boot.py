"""A real guest: apply -> domain running, boot, DHCP lease and metadata, from its console.

Starts its own etcd, a libvirtd if none answers, ``desired apiserver`` (for
its metadata service), ``desired reconcilers`` and ``desired hostd`` (real
guests through ``qemu:///system``, TCG here) as separate processes,
registers the tiny guest's images and a network, then creates ``--count``
instances on it one after another, each timed from the create to
``domainState: running`` in its status and, in its console log, to
``desired-guest: booted``, to its DHCP lease (``desired-guest: address``)
and to its instance id read from the metadata service; then deletes it. The
first uses a cold image cache.

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
from fixtures.guest_image import ADDRESS_MARKER, BOOT_MARKER, METADATA_MARKER, build
from fixtures.libvirtd import Libvirtd
from fixtures.ports import free_port
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
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "default", "project": "bench"},
            "spec": {"cidr": "10.232.0.0/24"},
        }
    )
    marks = {
        "boot line": BOOT_MARKER,
        "DHCP lease": ADDRESS_MARKER,
        "metadata": f"{METADATA_MARKER} instance-id i-",
    }
    times: dict[str, list[float]] = {"running": [], **{k: [] for k in marks}}
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
        seen: dict[str, float] = {}
        while len(seen) < len(times):
            status = (await store.get(ref)).get("status", {})
            now = time.perf_counter() - start
            if "running" not in seen and status.get("domainState") == "running":
                seen["running"] = now
            log = status.get("consoleLog")
            if "running" in seen and log:
                text = await asyncio.to_thread(Path(log).read_text, errors="replace")
                for what, marker in marks.items():
                    if what not in seen and marker in text:
                        seen[what] = now
            if now > 120:
                raise SystemExit(f"vm{i}: only {sorted(seen)} in 120 s: {status}")
            await asyncio.sleep(0.01)
        for what, at in seen.items():
            times[what].append(at)
        print(f"vm{i}: " + ", ".join(f"{w} {t:.2f} s" for w, t in seen.items()), flush=True)
        await store.delete(ref)
        while True:
            try:
                await store.get(ref)
            except NotFound:
                break
            await asyncio.sleep(0.05)
    for what, values in times.items():
        warm = values[1:] or values
        print(
            f"apply -> {what}: first (cold image cache) {values[0]:.2f} s; warm p50 "
            f"{statistics.median(warm):.2f} s, max {max(warm):.2f} s",
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
    metadata_port = free_port()
    env = {
        **os.environ,
        "DESIRED_ETCD_URL": etcd.url,
        "DESIRED_API_PORT": str(free_port()),
        "DESIRED_METADATA_PORT": str(metadata_port),
        "DESIRED_METADATA_SECRET": os.urandom(16).hex(),
        "DESIRED_HOSTD_METADATA_URL": f"http://127.0.0.1:{metadata_port}",
        "DESIRED_SQL_URL": f"sqlite:///{work / 'desired.sqlite'}",
        "DESIRED_HOSTD_NAME": f"bench-{os.getpid()}",
        "DESIRED_HOSTD_STORAGE_DIR": str(work / "hostd"),
        "DESIRED_DATA_DIR": str(work / "data"),
    }
    procs = [
        subprocess.Popen([str(BIN / "desired"), "apiserver"], env=env, stderr=subprocess.DEVNULL),
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
