"""Instances on simulated hosts: apply -> Ready latency, burst throughput, hostd RSS, etcd writes.

Starts its own etcd, ``desired reconcilers`` (scheduler, conductor into
SQLite; with ``--conductor-apart`` the conductor in a second process) and
``desired hostd --simulate H`` as separate processes, as in production,
then:

1. once hostd is done setting its hosts up (under 5 % of a CPU for half a
   second), creates ``--single`` instances one at a time and times each from
   the create to its Ready condition (p50/p99);
2. creates ``--burst`` instances at once and times until all are Ready;
3. prints hostd's RSS, etcd revisions (writes) per instance, and the
   conductor's projection lag: sampled during the burst by
   ``benchmarks.lag_sampler`` in a process of its own, and at its end.

    .venv/bin/python -m benchmarks.instance_burst --hosts 100 --burst 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_etcd import HOST, BenchEtcd, bench_etcd
from benchmarks.lag_sampler import progress
from state import keys
from state.envelope import Ref, condition
from state.keywatch import BOOKMARK, PUT, KeyWatch
from state.store import Store

BIN = Path(sys.executable).parent


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settled(
    pid: int, *, quiet: float = 0.05, window: float = 0.5, limit: float = 60
) -> float:
    """Waits until the process used under ``quiet`` of a CPU over ``window`` seconds (hostd
    goes on setting its hosts up for a while after they are registered); returns the
    seconds waited."""
    start = time.perf_counter()
    before = cpu_seconds(pid)
    while time.perf_counter() - start < limit:
        await asyncio.sleep(window)
        now = cpu_seconds(pid)
        if now - before < quiet * window:
            break
        before = now
    return time.perf_counter() - start


def instance(name: str) -> dict:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "project": "bench"},
        "spec": {"flavor": "m1.tiny", "image": "tiny"},
    }


async def run(
    bench: BenchEtcd, hosts: int, single: int, burst: int, sql_path: str, hostd_pid: int
) -> None:
    etcd = bench.client()
    store = Store(etcd)
    await store.create(
        {
            "kind": "Flavor",
            "metadata": {"name": "m1.tiny"},
            "spec": {"vcpus": 1, "ramMiB": 128, "diskGiB": 1},
        }
    )
    await store.create(
        {"kind": "Image", "metadata": {"name": "tiny"}, "spec": {"visibility": "public"}}
    )
    ready_at: dict[str, float] = {}
    scheduled_at: dict[str, float] = {}
    synced = asyncio.Event()

    async def watch() -> None:
        """Placement and readiness, read off the status keys alone: decoding whole objects
        took a share of the cores the burst runs on."""
        async for ev in KeyWatch(etcd, keys.status_prefix("Instance", "bench")):
            if ev.type == BOOKMARK:
                synced.set()
                continue
            if ev.type != PUT:
                continue
            name, status = keys.last_segment(ev.key), json.loads(ev.value)["status"]
            if status.get("host"):
                scheduled_at.setdefault(name, time.perf_counter())
            if (c := condition({"status": status}, "Ready")) and c["status"] == "True":
                ready_at.setdefault(name, time.perf_counter())

    watcher = asyncio.create_task(watch())
    await synced.wait()
    # wait until every simulated host is registered and alive
    while len((await etcd.range(b"/desired/v1/alive/", b"/desired/v1/alive0")).kvs) < hosts:
        await asyncio.sleep(0.2)
    print(f"hostd settled {await settled(hostd_pid):.1f} s after its hosts were alive")

    latencies = []
    for i in range(single):
        name = f"one-{i:04d}"
        t0 = time.perf_counter()
        await store.create(instance(name))
        while name not in ready_at:
            await asyncio.sleep(0.001)
            if time.perf_counter() - t0 > 60:
                stuck = await store.get(Ref("Instance", "bench", name))
                raise SystemExit(f"{name} not Ready after 60 s: {stuck['status']}")
        latencies.append((ready_at[name] - t0) * 1000)
    q = statistics.quantiles(latencies, n=100)
    print(f"apply -> Ready, one at a time ({single}): p50 {q[49]:.1f} ms  p99 {q[98]:.1f} ms")

    rev0 = await etcd.revision(keys.root())
    names = [f"burst-{i:05d}" for i in range(burst)]
    db = sqlite3.connect(sql_path)
    # the lag is sampled from a process of its own (benchmarks/lag_sampler.py)
    sampler = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.lag_sampler",
        "--etcd",
        bench.url,
        "--db",
        sql_path,
        *(
            ["--credentials", bench.env("apiserver")["DESIRED_ETCD_CREDENTIALS"]]
            if bench.creds
            else []
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert sampler.stdout is not None and (await sampler.stdout.readline()).strip() == b"ready"
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(64)

    async def create(name: str) -> None:
        async with sem:
            await store.create(instance(name))

    await asyncio.gather(*(create(n) for n in names))
    created = time.perf_counter() - t0
    while not all(n in ready_at for n in names):
        await asyncio.sleep(0.01)
        if time.perf_counter() - t0 > 600:
            missing = [n for n in names if n not in ready_at]
            raise SystemExit(f"{len(missing)} instances not Ready after 600 s")
    elapsed = max(ready_at[n] for n in names) - t0
    lags = [float(line) for line in (await sampler.communicate(b""))[0].split()]
    rev1 = await etcd.revision(keys.root())
    lag_start = time.perf_counter()
    while progress(db) < rev1:
        await asyncio.sleep(0.005)
    lag = (time.perf_counter() - lag_start) * 1000
    db.close()
    print(
        f"burst of {burst} over {hosts} hosts: created in {created:.2f} s, all Ready after {elapsed:.2f} s "
        f"= {burst / elapsed:.0f} instances/s"
    )
    placed = max(scheduled_at[n] for n in names) - t0
    print(f"  of which: all placed by the scheduler after {placed:.2f} s")
    print(f"etcd writes (revisions) per instance in the burst: {(rev1 - rev0) / burst:.1f}")
    q_lag = statistics.quantiles(lags, n=100)
    print(
        f"conductor lag during the burst ({len(lags)} samples): p50 {q_lag[49]:.0f} ms, "
        f"p99 {q_lag[98]:.0f} ms; SQL caught up with the last write {lag:.0f} ms after "
        "the burst was Ready"
    )
    print(
        f"hostd RSS with {hosts} simulated hosts and {burst + single} domains: {rss_mib(hostd_pid):.0f} MiB"
    )
    watcher.cancel()
    await etcd.close()


def log_file(directory: Path | None, name: str) -> Any:
    if directory is None:
        return subprocess.DEVNULL
    directory.mkdir(parents=True, exist_ok=True)
    return (directory / f"{name}.log").open("w")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hosts", type=int, default=100)
    p.add_argument("--single", type=int, default=50)
    p.add_argument("--burst", type=int, default=1000)
    p.add_argument("--log-dir", type=Path, help="keep the processes' logs there")
    p.add_argument(
        "--conductor-apart",
        action="store_true",
        help="run the conductor in a process of its own (reconcilers.run)",
    )
    p.add_argument(
        "--secure",
        action="store_true",
        help="etcd with TLS and authentication, a user per part (as desired up runs it)",
    )
    args = p.parse_args()
    with bench_etcd(args.secure) as etcd, tempfile.TemporaryDirectory() as data:
        env = dict(os.environ, DESIRED_DATA_DIR=data, DESIRED_HOSTD_NAME=HOST)
        print(f"etcd: {'TLS and authentication' if args.secure else 'plain HTTP, no users'}")
        procs = [
            subprocess.Popen(
                [str(BIN / "desired"), *command],
                env={**env, **etcd.env(command[0]), **extra},
                stdout=subprocess.DEVNULL,
                stderr=log_file(args.log_dir, "-".join([command[0], *extra.values()])),
            )
            for command, extra in [
                *(
                    [
                        (["reconcilers"], {"DESIRED_RECONCILERS_RUN": "scheduler,gitsync,network"}),
                        (["reconcilers"], {"DESIRED_RECONCILERS_RUN": "conductor"}),
                    ]
                    if args.conductor_apart
                    else [(["reconcilers"], {})]
                ),
                (["hostd", "--simulate", str(args.hosts)], {}),
            ]
        ]
        try:
            asyncio.run(
                run(
                    etcd,
                    args.hosts,
                    args.single,
                    args.burst,
                    f"{data}/desired.sqlite",
                    procs[-1].pid,
                )
            )
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)


if __name__ == "__main__":
    main()
