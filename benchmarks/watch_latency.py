"""Watch delivery latency: from a write in etcd to a reconciler's handler.

Starts its own etcd, runs ``--informers`` informers (the reconcilers'
runtime: list + watch + cache + handler) in this process, and a writer in a
separate process that creates and updates objects at ``--rate`` writes/s,
stamping each with the wall-clock time of the write. Every handler records
``receive time - write time``; the benchmark prints p50/p99/max per run.

    .venv/bin/python -m benchmarks.watch_latency --informers 10 --rate 500 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

from fixtures.etcd import EtcdServer
from reconcilers.runtime.informer import Informer
from state.etcd import EtcdClient

WRITER = """
import asyncio, sys, time
from state.etcd import EtcdClient
from state.envelope import Ref
from state.store import Store

async def main(url, rate, seconds):
    etcd = EtcdClient(url)
    store = Store(etcd)
    interval = 1.0 / rate
    n = 0
    start = time.monotonic()
    names = 200
    while time.monotonic() - start < seconds:
        name = f"w{n % names:04d}"
        obj = {"kind": "Flavor", "metadata": {"name": name},
               "spec": {"vcpus": 1, "ramMiB": 1, "diskGiB": 0,
                        "description": repr(time.time())}}
        if n < names:
            await store.create(obj)
        else:
            cur = await store.get(Ref("Flavor", None, name))
            cur["spec"]["description"] = repr(time.time())
            await store.update(cur, current=cur)
        n += 1
        next_at = start + n * interval
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await etcd.close()
    print(n)

asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3])))
"""


async def run(url: str, informers: int, rate: float, seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    etcd = EtcdClient(url)
    running = []

    def handler(event_type: str, obj: dict) -> None:
        if event_type == "DELETED":
            return
        sent = float(obj["spec"]["description"])
        latencies.append(time.time() - sent)

    for _ in range(informers):
        inf = Informer(etcd, "Flavor")
        inf.add_handler(handler)
        running.append(asyncio.create_task(inf.run()))
        await asyncio.wait_for(inf.synced.wait(), 10)
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, url, str(rate), str(seconds), stdout=subprocess.PIPE
    )
    out, _ = await writer.communicate()
    await asyncio.sleep(0.5)
    for t in running:
        t.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    await etcd.close()
    return latencies, int(out.decode().strip() or 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--informers", type=int, default=10)
    p.add_argument("--rate", type=float, default=500)
    p.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()
    with EtcdServer() as etcd:
        lat, writes = asyncio.run(run(etcd.url, args.informers, args.rate, args.seconds))
    ms = sorted(x * 1000 for x in lat)
    q = statistics.quantiles(ms, n=100)
    print(
        f"watch delivery: {args.informers} informers, {writes} writes at {args.rate:.0f}/s, "
        f"{len(ms)} deliveries (expected {writes * args.informers})"
    )
    print(f"  p50 {q[49]:.1f} ms   p99 {q[98]:.1f} ms   max {ms[-1]:.1f} ms")


if __name__ == "__main__":
    main()
